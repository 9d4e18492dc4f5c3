"""Evaluation metrics shared by the experiments, in torch (no scikit-learn at run time)."""
from __future__ import annotations

import torch


def _check_finite(name: str, values: torch.Tensor) -> None:
    """A NaN sorts and ranks like a number: a diverged model's NaN scores gave an AUC of 1.0. Refuse."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        raise ValueError(f"{name}: {int(bad.sum())} of {values.numel()} values are NaN or infinite "
                         f"(a diverged model?); a metric of non-finite scores would be meaningless")


def _check_scores(pos: torch.Tensor, neg: torch.Tensor):
    pos, neg = torch.as_tensor(pos).flatten().double(), torch.as_tensor(neg).flatten().double()
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError(f"need at least one positive and one negative score, got {pos.numel()} and {neg.numel()}")
    _check_finite("positive scores", pos)
    _check_finite("negative scores", neg)
    return pos, neg


def classification_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows of ``logits`` whose largest entry is at the row's label.

    Non-finite logits are refused: ``argmax`` takes a NaN for the largest entry, so a diverged
    classifier would be scored as always answering one class.
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must have shape (n, classes) and labels (n,), got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    _check_finite("classification_accuracy: logits", logits)
    return (logits.argmax(-1) == labels.to(logits.device)).double().mean().item()


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


def knn_accuracy(train_codes: torch.Tensor, train_labels: torch.Tensor, test_codes: torch.Tensor,
                 test_labels: torch.Tensor, *, k: int = 5, metric: str = "euclidean", chunk: int = 2048) -> float:
    """Accuracy of a k-nearest-neighbour majority vote (ties: the smallest label), in chunks of test points.

    ``metric`` is ``euclidean`` or ``cosine`` (1 - cosine similarity: for codes on the sphere).
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    if not 1 <= k <= len(train_codes):
        raise ValueError(f"k must be in [1, {len(train_codes)}] (the number of labelled points), got {k}")
    train_codes, test_codes = train_codes.double(), test_codes.double()
    _check_finite("knn_accuracy: training codes", train_codes)
    _check_finite("knn_accuracy: test codes", test_codes)
    if metric == "cosine":
        train_codes = torch.nn.functional.normalize(train_codes, dim=-1)
        test_codes = torch.nn.functional.normalize(test_codes, dim=-1)
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    correct = 0
    for start in range(0, len(test_codes), chunk):
        distances = torch.cdist(test_codes[start:start + chunk], train_codes)
        neighbours = distances.topk(k, largest=False).indices
        votes = torch.nn.functional.one_hot(train_labels[neighbours], num_classes).sum(1)
        correct += (votes.argmax(-1) == test_labels[start:start + chunk]).sum().item()
    return correct / len(test_codes)


def circular_alignment(true_angle: torch.Tensor, codes: torch.Tensor) -> float:
    r"""How well the angle of 2-d codes follows a true angle, up to rotation and reflection.

    :math:`\max_{s = \pm 1} |\overline{\exp(i (\phi - s \theta))}|`, the mean over points and
    :math:`\phi` the angle of each code: 1 when :math:`\phi = \pm\theta + c` for a constant
    :math:`c`, about 0 when :math:`\phi` is unrelated to :math:`\theta`.
    """
    if codes.shape[-1] != 2:
        raise ValueError(f"codes must be 2-dimensional, got shape {tuple(codes.shape)}")
    _check_finite("circular_alignment: codes", codes)
    phi = torch.atan2(codes[:, 1].double(), codes[:, 0].double())
    theta = true_angle.double()
    return max(torch.polar(torch.ones_like(phi), phi - s * theta).mean().abs().item() for s in (1, -1))


def distance_preservation(true_points: torch.Tensor, codes: torch.Tensor) -> float:
    """Spearman rank correlation between the pairwise distances of the true latent points and those
    of the codes: 1 when the codes keep the order of all distances (an isometry up to a monotone
    map: rotations, reflections and scale are free), about 0 when unrelated."""
    if len(true_points) != len(codes) or len(codes) < 3:
        raise ValueError(f"need as many true points as codes, at least 3; got {len(true_points)} and {len(codes)}")
    _check_finite("distance_preservation: codes", codes)
    upper = torch.triu_indices(len(codes), len(codes), 1)

    def ranks(points):
        distances = torch.cdist(points.double(), points.double())[upper[0], upper[1]]
        return distances.argsort().argsort().double()

    return torch.corrcoef(torch.stack([ranks(true_points), ranks(codes)]))[0, 1].item()
