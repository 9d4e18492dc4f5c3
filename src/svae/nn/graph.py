r"""Variational graph auto-encoders with Gaussian, von Mises-Fisher or Power Spherical latents.

Built on ``torch_geometric.nn.GAE`` (Kipf & Welling 2016, "Variational Graph Auto-Encoders"):
a GCN encoder, an inner-product decoder, a per-node posterior and prior from
:mod:`svae.nn.latent`. N-VGAE is ``latent_family("normal", 16, scale="exp")``; the S-VGAE of
Davidson et al. (2018) is ``latent_family("vmf", 16)``.

Scores on the sphere: the inner product of two unit vectors lies in [-1, 1], so the plain
decoder ``sigmoid(z_i^T z_j)`` never exceeds ``sigmoid(1) = 0.73``. The decoder here multiplies
the inner product by a scale, fixed or learnt; for ranking metrics (AUC, AP) on the posterior
means the scale is irrelevant, for the reconstruction loss it lets probabilities reach 0 and 1.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GAE, GCNConv
from torch_geometric.utils import negative_sampling, to_torch_csr_tensor

from svae.metrics import average_precision, roc_auc
from svae.nn.latent import LatentFamily
from svae.special import wide_dtype


def message_passing_graph(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """The graph a :class:`GCNEncoder` propagates over, in the fastest form the device has.

    On CPU and CUDA: PyG's ``adj_t``, a sparse CSR matrix whose row i holds the sources of the
    edges into node i; GCNConv then aggregates with one sparse matrix product, about 3x faster on
    CPU than gathering and scattering one message per edge (PubMed, 64 channels), with the same
    result up to the order of summation. Elsewhere (no CSR products) the edge list itself.
    """
    if edge_index.device.type not in ("cpu", "cuda"):
        return edge_index
    with warnings.catch_warnings():  # torch warns once per process that CSR tensors are in beta
        warnings.simplefilter("ignore", UserWarning)
        return to_torch_csr_tensor(edge_index.flip(0), size=num_nodes)


class GCNEncoder(nn.Module):
    """Two graph convolutions: ``in -> hidden`` (ReLU) ``-> out``, with dropout on each input.

    ``out`` is the number of raw parameters of the latent family (``LatentFamily.num_params``):
    one GCN layer for all heads is the same as one layer per head, as GCNConv is linear.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.conv1 = GCNConv(in_channels, hidden_channels, cached=True)
        self.conv2 = GCNConv(hidden_channels, out_channels, cached=True)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and edge_index.layout == torch.sparse_csr and torch.is_autocast_enabled("cpu"):
            # torch has no bfloat16 sparse product on the CPU: there the convolutions run in float32
            with torch.autocast("cpu", enabled=False):
                return self._convolve(x.float(), edge_index)
        return self._convolve(x, edge_index)

    def _convolve(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = F.dropout(x, self.dropout, self.training)
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


class ScaledInnerProductDecoder(nn.Module):
    """``sigmoid(scale * z_i^T z_j)``; the scale is a constant or a learnt parameter (kept positive
    as ``exp(log_scale)``)."""

    def __init__(self, scale: float = 1.0, learnable: bool = False):
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        log_scale = torch.tensor(math.log(scale))
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def logits(self, z: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        # index_select, not z[index]: the backward of advanced indexing accumulates in a
        # nondeterministic order on multi-threaded CPUs.
        return self.scale * (z.index_select(0, edge_index[0]) * z.index_select(0, edge_index[1])).sum(-1)

    def forward(self, z: torch.Tensor, edge_index: torch.Tensor, sigmoid: bool = True) -> torch.Tensor:
        logits = self.logits(z, edge_index)
        return torch.sigmoid(logits) if sigmoid else logits

    def forward_all(self, z: torch.Tensor, sigmoid: bool = True) -> torch.Tensor:
        logits = self.scale * z @ z.T
        return torch.sigmoid(logits) if sigmoid else logits


def _sum_log(u: torch.Tensor, dim: int) -> torch.Tensor:
    """sum of log(u) along ``dim`` for u in [1/2, 1], with one log per 64 entries (and one for the
    rest): the log of their product, which is at least 2^-64 and so never underflows, even in
    float32.

    The logarithm is the costly part of the dense loss (a few ns per entry on CPU; a product is a
    fraction of that). The price: each log(u) carries an absolute error of about one rounding
    unit of 1 instead of a relative one.
    """
    n = u.shape[dim]
    if n <= 64:
        return u.prod(dim).log()
    whole = n - n % 64
    groups = u.narrow(dim, 0, whole).unflatten(dim, (-1, 64)).prod(dim + 1).log().sum(dim)
    return groups + u.narrow(dim, whole, n - whole).prod(dim).log()


class _SoftplusGramSum(torch.autograd.Function):
    """sum_ij softplus(scale z_i^T z_j) over all N^2 ordered pairs, and optionally its row sums.

    Row blocks of about ``block_elements`` entries (small enough to stay in cache), the upper
    triangle only (the Gram matrix is symmetric: blocks right of the diagonal count twice), and
    one sigmoid per entry serving both the value, softplus(s) = relu(s) - log sigmoid(|s|) with
    sigmoid(|s|) = max(sigmoid(s), 1 - sigmoid(s)), and the gradient
    d/dz_k = 2 scale sum_j sigmoid(s_kj) z_j, computed in the same pass.

    Accuracy of the value: each entry to an absolute error of about one rounding unit (6e-8 in
    float32), so the sum to about N^2 rounding units; entries below that, softplus(s) ~ e^s for
    s < -17 in float32, are not resolved. The gradient depends on the sigmoids alone and is exact
    to rounding.
    """

    @staticmethod
    def forward(ctx, z, scale, block_elements, with_row_sums):
        # in z's dtype even under autocast: a sum of N^2 entries needs at least float32's precision
        with torch.autocast(z.device.type, enabled=False):
            return _SoftplusGramSum._forward(ctx, z, scale, block_elements, with_row_sums)

    @staticmethod
    def _forward(ctx, z, scale, block_elements, with_row_sums):
        n = z.shape[0]
        block = max(1, block_elements // n)
        need_grad = any(ctx.needs_input_grad[:2])
        # sums of the entries down each column over the row blocks above it, and the diagonal
        # blocks' part of them; accumulated in float64 (float32 on MPS, which has none)
        accumulate = wide_dtype(z)
        column_sums = torch.zeros(n, dtype=accumulate, device=z.device)
        diagonal = torch.zeros(n, dtype=accumulate, device=z.device)
        row_sums = torch.zeros(n if with_row_sums else 0, dtype=z.dtype, device=z.device)
        grad_z = torch.zeros_like(z) if need_grad else None
        scaled = scale * z
        for start in range(0, n, block):
            stop = min(start + block, n)
            rows = stop - start
            logits = scaled[start:stop] @ z[start:].T  # rows of this block, columns from its first row on
            sig = torch.sigmoid(logits)
            relu = logits.clamp_min(0)
            u = torch.maximum(sig, 1 - sig)  # sigmoid(|s|)
            columns = relu.sum(0) - _sum_log(u, 0)  # the entries summed over this block's rows
            column_sums[start:] += columns
            diagonal[start:stop] = columns[:rows]
            if with_row_sums:
                row_sums[start:stop] += relu.sum(1) - _sum_log(u, 1)
                row_sums[stop:] += columns[rows:]
            if need_grad:
                grad_z[start:stop].addmm_(sig, z[start:])
                grad_z[stop:].addmm_(sig[:, rows:].T, z[start:stop])
        if need_grad:
            grad_z *= 2
            grad_scale = (grad_z * z).sum() / 2  # sum_ij sigmoid(s_ij) z_i^T z_j
            grad_z *= scale
        else:
            grad_scale = None
        ctx.save_for_backward(grad_z, grad_scale)
        ctx.mark_non_differentiable(row_sums)
        # the entries right of the diagonal blocks stand for their mirror images too
        total = 2 * column_sums.sum() - diagonal.sum()
        return total.to(z.dtype), row_sums

    @staticmethod
    def backward(ctx, grad_total, _):
        grad_z, grad_scale = ctx.saved_tensors
        return grad_total * grad_z, grad_total * grad_scale, None, None


class VariationalGAE(GAE):
    """A variational graph auto-encoder with a pluggable latent family.

    Follows ``torch_geometric.nn.VGAE``: :meth:`encode` samples codes and remembers the posterior,
    :meth:`kl_loss` is the KL averaged over nodes (add ``kl_loss() / num_nodes`` as Kipf does),
    :meth:`recon_loss` is PyG's negative-sampling loss, :meth:`test` returns (AUC, AP). It adds
    :meth:`dense_recon_loss` (Kipf's weighted cross-entropy over the whole adjacency) and
    :meth:`embed` (posterior means/modes for evaluation).
    """

    def __init__(self, encoder: nn.Module, latent: LatentFamily, decoder: nn.Module | None = None):
        super().__init__(encoder, decoder if decoder is not None else ScaledInnerProductDecoder())
        self.latent = latent
        self.q = None

    def posterior(self, *args, **kwargs):
        return self.latent.posterior(self.encoder(*args, **kwargs))

    def encode(self, *args, **kwargs) -> torch.Tensor:
        self.q = self.posterior(*args, **kwargs)
        return self.q.rsample()

    @torch.no_grad()
    def embed(self, *args, **kwargs) -> torch.Tensor:
        return self.latent.point(self.posterior(*args, **kwargs))

    def kl_loss(self, q=None) -> torch.Tensor:
        return self.latent.kl(q if q is not None else self.q).mean()

    def recon_loss(self, z, pos_edge_index, neg_edge_index=None, *, per_node: bool = False):
        """PyG's loss: mean -log sigmoid over the edges + mean -log(1 - sigmoid) over as many sampled
        non-edges. With ``per_node``, also each node's share (the losses of the pairs it is in)."""
        if neg_edge_index is None:
            neg_edge_index = negative_sampling(pos_edge_index, z.size(0))
        pos = F.softplus(-self.decoder.logits(z, pos_edge_index)) / pos_edge_index.shape[1]
        neg = F.softplus(self.decoder.logits(z, neg_edge_index)) / neg_edge_index.shape[1]
        loss = pos.sum() + neg.sum()
        if not per_node:
            return loss
        share = z.new_zeros(z.shape[0])
        for edges, losses in ((pos_edge_index, pos), (neg_edge_index, neg)):
            losses = losses.detach()
            share.index_add_(0, edges[0], losses).index_add_(0, edges[1], torch.where(edges[0] == edges[1], 0.0, losses))
        return loss, share

    def dense_recon_loss(self, z, train_pos, *, per_node: bool = False, block_elements: int = 1 << 19):
        """Kipf's loss: norm * mean over all N^2 entries of the cross-entropy with logits against the
        training adjacency plus self-loops, positives weighted by pos_weight = (N^2 - A)/A, where A is
        the number of (directed) training edges and norm = N^2 / (2 (N^2 - A)).

        Written as sum_ij softplus(s_ij) (over all pairs, in row blocks: memory O(N block)) plus a
        correction on the positive entries, so PubMed's 19717^2 entries are never held at once.

        Args:
            train_pos: (2, E) undirected training edges, each pair once.
        """
        n = z.shape[0]
        loops = torch.arange(n, device=z.device)
        positives = torch.cat([train_pos, train_pos.flip(0), torch.stack([loops, loops])], dim=1)
        a = 2 * train_pos.shape[1]
        pos_weight = (n * n - a) / a
        norm = n * n / (2 * (n * n - a))
        scale = getattr(self.decoder, "scale", torch.tensor(1.0, device=z.device))
        all_pairs, row_sums = _SoftplusGramSum.apply(z, scale, block_elements, per_node)
        logits = self.decoder.logits(z, positives)
        on_positives = pos_weight * F.softplus(-logits) - F.softplus(logits)
        loss = norm / (n * n) * (all_pairs + on_positives.sum())
        if not per_node:
            return loss
        # pairs involving node i: row i and column i of the (symmetric) loss matrix, diagonal once
        diagonal = F.softplus(scale.detach() * z.detach().square().sum(-1))
        share = 2 * row_sums - diagonal
        on_positives = on_positives.detach()
        is_loop = positives[0] == positives[1]
        share = share.index_add(0, positives[0], on_positives).index_add(0, positives[1], torch.where(is_loop, 0.0, on_positives))
        return loss, norm / (n * n) * share

    @torch.no_grad()
    def test(self, z, pos_edge_index, neg_edge_index) -> tuple[float, float]:
        """(ROC AUC, average precision) of the scores of edges against non-edges."""
        pos = self.decoder.logits(z, pos_edge_index)
        neg = self.decoder.logits(z, neg_edge_index)
        return roc_auc(pos, neg), average_precision(pos, neg)
