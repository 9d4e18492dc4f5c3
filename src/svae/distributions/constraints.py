"""The unit sphere as a torch.distributions constraint."""
import math

import torch
from torch.distributions import constraints

__all__ = ["sphere", "nonnegative_finite"]


class _Sphere(constraints.Constraint):
    """Vectors of unit Euclidean norm along the last dimension.

    The tolerance is the square root of the dtype's epsilon (about 2e-4 in float32, 1e-8 in
    float64): loose enough for vectors normalised in that precision, tight enough to catch a
    forgotten normalisation.
    """

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        if value.dim() == 0 or value.shape[-1] < 1:
            return torch.zeros((), dtype=torch.bool)
        tol = torch.finfo(value.dtype).eps ** 0.5 if value.is_floating_point() else 1e-8
        norm = torch.linalg.vector_norm(value, dim=-1)
        return (norm - 1).abs() <= tol

    def __repr__(self) -> str:
        return "Sphere()"


sphere = _Sphere()


class _NonnegativeFinite(constraints.Constraint):
    """Finite numbers >= 0. An infinite concentration is a point mass, which has no density:
    the distributions reject it rather than return NaN from ``log_prob`` and ``entropy``."""

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return (value >= 0) & (value < math.inf)  # NaN fails both; three operations, isfinite takes five

    def __repr__(self) -> str:
        return "NonnegativeFinite()"


nonnegative_finite = _NonnegativeFinite()
