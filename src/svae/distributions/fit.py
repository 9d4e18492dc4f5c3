r"""Maximum-likelihood fit of a von Mises-Fisher distribution to points on the sphere."""
from __future__ import annotations

import torch
from torch.distributions import Distribution

from svae.distributions.constraints import nonnegative_finite, sphere
from svae.special import iv_ratio_and_complement, wide_dtype

__all__ = ["fit_von_mises_fisher"]

_NEWTON_STEPS = 6  # from Banerjee et al.'s start, Newton in log kappa reaches float64 rounding in 3-4


def fit_von_mises_fisher(x: torch.Tensor, weights: torch.Tensor | None = None,
                         validate_args: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The maximum-likelihood ``(loc, concentration)`` of a vMF for the unit vectors ``x``.

    ``loc`` is the direction of the (weighted) mean :math:`\bar x`, and the concentration solves
    :math:`A_m(\kappa) = \bar R = |\bar x|` with :math:`A_m = I_{m/2} / I_{m/2-1}`. It is solved in
    float64 as :math:`\log(1 - A_m(\kappa)) = \log(1 - \bar R)` by Newton steps in
    :math:`\log\kappa` from the closed-form start of Banerjee et al. (2005),
    :math:`\kappa_0 = \bar R (m - \bar R^2) / (1 - \bar R^2)`: :math:`\log(1 - A_m)` is nearly
    linear in :math:`\log\kappa` at both ends, and :math:`1 - \bar R` is computed as the weighted
    mean of :math:`|x_i - \mathrm{loc}|^2 / 2`, without the cancellation of ``1 - |mean|`` for
    tightly clustered points. A fixed number of steps: batched, on the points' device, and without
    host synchronisation when ``validate_args`` is off.

    Args:
        x: unit vectors, shape ``(..., n, m)``: ``n`` points in :math:`\mathbb{R}^m` per batch entry.
        weights: non-negative weights, shape ``(..., n)`` (default: all 1), with a positive sum
            for every batch entry.
        validate_args: check that ``x`` holds finite unit vectors and ``weights`` finite
            non-negative numbers of positive sum, raising ``ValueError`` otherwise (a fit of
            unnormalised vectors or of negative weights would be silently wrong). Default: as
            ``torch.distributions.Distribution``'s default, on unless Python runs with ``-O``.

    Returns:
        ``loc`` of shape ``(..., m)`` and ``concentration`` of shape ``(...)``, in ``x``'s dtype:
        0 where the mean is 0 and ``inf`` where all points coincide.

    Example:
        >>> x = VonMisesFisher(torch.tensor([0.0, 0.0, 1.0]), torch.tensor(20.0)).sample((1000,))
        >>> loc, kappa = fit_von_mises_fisher(x)  # about (0, 0, 1) and 20

    References:
        Banerjee, Dhillon, Ghosh and Sra, Clustering on the Unit Hypersphere using von Mises-Fisher
        Distributions, JMLR 2005.
    """
    if x.dim() < 2 or x.shape[-1] < 2:
        raise ValueError(f"fit_von_mises_fisher: x must have shape (..., n, m) with m >= 2, got {tuple(x.shape)}")
    if x.shape[-2] < 1:
        raise ValueError(f"fit_von_mises_fisher: x must hold at least one point per fit, got shape {tuple(x.shape)}")
    if weights is not None and weights.shape != x.shape[:-1]:
        raise ValueError(f"fit_von_mises_fisher: weights must have shape {tuple(x.shape[:-1])} (one per point), "
                         f"got {tuple(weights.shape)}")
    if Distribution._validate_args if validate_args is None else validate_args:
        _validate(x, weights)
    m = x.shape[-1]
    wide = x.to(wide_dtype(x))
    if weights is None:
        weights = torch.ones(wide.shape[:-1], dtype=wide.dtype, device=wide.device)
    weights = weights.to(wide.dtype) / weights.sum(-1, keepdim=True).to(wide.dtype)
    mean = (weights.unsqueeze(-1) * wide).sum(-2)
    loc = torch.nn.functional.normalize(mean, dim=-1)
    mean_length = torch.linalg.vector_norm(mean, dim=-1).clamp(max=1)
    gap = (weights * 0.5 * (wide - loc.unsqueeze(-2)).square().sum(-1)).sum(-1)  # 1 - R, precisely
    kappa = _solve_concentration(mean_length, gap, m)
    return loc.to(x.dtype), kappa.to(x.dtype)


def _validate(x: torch.Tensor, weights: torch.Tensor | None) -> None:
    """Raise ValueError, naming the argument, for points off the sphere or unusable weights."""
    on_sphere = sphere.check(x)
    if not bool(on_sphere.all()):
        norms = torch.linalg.vector_norm(x[~on_sphere], dim=-1)
        raise ValueError(f"fit_von_mises_fisher: x must hold finite unit vectors along its last dimension; "
                         f"{int((~on_sphere).sum())} of {on_sphere.numel()} are not (the first has norm "
                         f"{norms[0].item():.6g}): normalise them first")
    if weights is None:
        return
    if not bool(nonnegative_finite.check(weights).all()):
        raise ValueError("fit_von_mises_fisher: weights must be finite and non-negative")
    if not bool((weights.sum(-1) > 0).all()):
        raise ValueError("fit_von_mises_fisher: weights must have a positive sum for every fit (all are 0 in one)")


def _solve_concentration(mean_length: torch.Tensor, gap: torch.Tensor, m: int) -> torch.Tensor:
    """kappa with A_m(kappa) = mean_length, i.e. 1 - A_m(kappa) = gap (see fit_von_mises_fisher)."""
    degenerate = (mean_length == 0) | (gap == 0)
    r = torch.where(degenerate, 0.5, mean_length)
    target = torch.log(torch.where(degenerate, 0.5, gap))
    log_kappa = torch.log(r * (m - r * r)) - torch.log1p(-r) - torch.log1p(r)  # Banerjee et al.'s start
    for _ in range(_NEWTON_STEPS):
        kappa = log_kappa.exp()
        ratio, complement = iv_ratio_and_complement(m / 2, kappa, rounded=False)
        # d log(1 - A) / d log kappa = -kappa A' / (1 - A), A' = (1 - A)(1 + A) - (m - 1) A / kappa.
        # Above kappa = 1e4 m its two terms cancel (to eps kappa); there the slope is its limit -1,
        # off by O(m / kappa), which leaves Newton converging at that rate per step.
        slope = -(kappa * complement * (1 + ratio) - (m - 1) * ratio) / complement
        slope = torch.where(kappa > 1e4 * m, -1.0, slope)
        log_kappa = log_kappa - (torch.log(complement) - target) / slope
    kappa = log_kappa.exp()
    return torch.where(mean_length == 0, 0.0, torch.where(gap == 0, torch.inf, kappa))
