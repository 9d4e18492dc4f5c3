"""Evaluation metrics shared by the experiments, in torch (no scikit-learn at run time)."""
from __future__ import annotations

import torch


def _check_scores(pos: torch.Tensor, neg: torch.Tensor):
    pos, neg = torch.as_tensor(pos).flatten().double(), torch.as_tensor(neg).flatten().double()
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError(f"need at least one positive and one negative score, got {pos.numel()} and {neg.numel()}")
    return pos, neg


def roc_auc(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting 1/2.

    By ranks (Mann-Whitney U): (sum of the positives' ranks - n+(n+ + 1)/2) / (n+ n-), with tied
    scores given their average rank.
    """
    pos, neg = _check_scores(pos_scores, neg_scores)
    scores = torch.cat([pos, neg])
    _, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    # average rank (1-based) of each distinct value: ranks before it plus (count + 1) / 2
    first = torch.cumsum(counts, 0) - counts
    ranks = (first + (counts + 1) / 2).double()[inverse]
    n_pos, n_neg = pos.numel(), neg.numel()
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> float:
    """Average precision: sum over thresholds of (recall increase) x precision, one threshold per
    distinct score (the definition scikit-learn uses)."""
    pos, neg = _check_scores(pos_scores, neg_scores)
    scores = torch.cat([pos, neg])
    labels = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
    order = torch.argsort(scores, descending=True, stable=True)
    scores, labels = scores[order], labels[order]
    true_pos = torch.cumsum(labels, 0)
    # the end of each run of equal scores is a threshold
    last = torch.ones_like(scores, dtype=torch.bool)
    last[:-1] = scores[1:] != scores[:-1]
    tp = true_pos[last]
    precision = tp / (torch.nonzero(last).squeeze(-1) + 1).double()
    recall_step = torch.diff(tp, prepend=tp.new_zeros(1)) / pos.numel()
    return float((recall_step * precision).sum())
