"""Edge splits for link prediction, following Kipf & Welling (2016)'s graph auto-encoder protocol.

Undirected edges (each pair once, self-loops dropped) are shuffled and split into test
(``floor(E * test_ratio)``), validation (``floor(E * val_ratio)``) and training edges (the rest,
85 % by default). Validation and test each get as many non-edges, drawn uniformly from the pairs
that are edges of the *full* graph in neither direction, distinct, and never shared between
validation and test. Only training edges enter the message-passing graph and the
reconstruction targets.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LinkSplit:
    """Edge sets of one split; every ``*_pos``/``*_neg`` is a (2, k) tensor of pairs i < j."""

    num_nodes: int
    train_pos: torch.Tensor
    val_pos: torch.Tensor
    val_neg: torch.Tensor
    test_pos: torch.Tensor
    test_neg: torch.Tensor

    @property
    def train_edge_index(self) -> torch.Tensor:
        """The training edges in both directions: the graph for message passing."""
        return torch.cat([self.train_pos, self.train_pos.flip(0)], dim=1)


def undirected_pairs(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Each undirected edge once as (i, j) with i < j, self-loops dropped, sorted."""
    i, j = edge_index
    low, high = torch.minimum(i, j), torch.maximum(i, j)
    keys = torch.unique(low[low != high] * num_nodes + high[low != high])
    return torch.stack([keys // num_nodes, keys % num_nodes])


def _pair_keys(pairs: torch.Tensor, num_nodes: int) -> torch.Tensor:
    return pairs[0] * num_nodes + pairs[1]


def _sample_non_edges(count: int, forbidden: torch.Tensor, num_nodes: int, generator) -> torch.Tensor:
    """``count`` distinct pairs i < j whose keys are not in ``forbidden`` (uniform over such pairs)."""
    found = torch.empty(0, dtype=torch.long)
    while found.numel() < count:
        need = count - found.numel()
        draws = torch.randint(num_nodes, (2, 2 * need + 16), generator=generator)
        draws = draws[:, draws[0] != draws[1]]
        keys = _pair_keys(torch.stack([draws.min(0).values, draws.max(0).values]), num_nodes)
        keys = torch.unique(keys[~torch.isin(keys, forbidden) & ~torch.isin(keys, found)])
        # unique() sorts: a random subset of the distinct keys keeps the draw uniform
        keys = keys[torch.randperm(keys.numel(), generator=generator)[:need]]
        found = torch.cat([found, keys])
    return torch.stack([found // num_nodes, found % num_nodes])


def kipf_split(edge_index: torch.Tensor, num_nodes: int, *, val_ratio: float = 0.05,
               test_ratio: float = 0.10, seed: int = 0) -> LinkSplit:
    """Split the undirected edges of a graph for link prediction (Kipf & Welling 2016), seeded."""
    if not (0 <= val_ratio and 0 <= test_ratio and val_ratio + test_ratio < 1):
        raise ValueError(f"val_ratio and test_ratio must be >= 0 with a sum < 1, got {val_ratio}, {test_ratio}")
    generator = torch.Generator().manual_seed(seed)
    pairs = undirected_pairs(edge_index.cpu(), num_nodes)
    pairs = pairs[:, torch.randperm(pairs.shape[1], generator=generator)]
    n_test, n_val = int(pairs.shape[1] * test_ratio), int(pairs.shape[1] * val_ratio)
    test_pos, val_pos, train_pos = pairs[:, :n_test], pairs[:, n_test:n_test + n_val], pairs[:, n_test + n_val:]
    negatives = _sample_non_edges(n_test + n_val, _pair_keys(pairs, num_nodes), num_nodes, generator)
    return LinkSplit(num_nodes, train_pos, val_pos, negatives[:, n_test:], test_pos, negatives[:, :n_test])
