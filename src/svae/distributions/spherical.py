"""What the von Mises-Fisher and Power Spherical distributions share: a mean direction on the
sphere and a non-negative concentration, broadcast to one batch shape."""
from __future__ import annotations

import torch
from torch.distributions import Distribution

from svae import native
from svae.distributions.constraints import nonnegative_finite, sphere
from svae.special import wide_dtype


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a sampler or density computes in for parameters of ``dtype``: float32 for the
    half precisions (bfloat16, float16), which torch's Gamma sampler and the special functions do
    not take and whose 8 or 11 bits of mantissa would not hold a cosine near 1; else ``dtype``."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def broadcast_parameters(name: str, loc, concentration, validate: bool):
    """Check shapes, promote dtypes and broadcast (loc (..., m), concentration (...)) to one batch."""
    loc = torch.as_tensor(loc)
    concentration = torch.as_tensor(concentration, device=loc.device)
    dtype = torch.promote_types(loc.dtype, concentration.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    loc, concentration = loc.to(dtype), concentration.to(dtype)
    if loc.dim() < 1 or loc.shape[-1] < 2:
        raise ValueError(
            f"{name}: loc must have shape (..., m) with m >= 2 (unit vectors in R^m), "
            f"got shape {tuple(loc.shape)}"
        )
    try:
        batch_shape = torch.broadcast_shapes(loc.shape[:-1], concentration.shape)
    except RuntimeError:
        raise ValueError(
            f"{name}: the batch shape of loc {tuple(loc.shape[:-1])} (its shape without the last "
            f"dimension) and the shape of concentration {tuple(concentration.shape)} do not broadcast"
        ) from None
    if validate and _trailing_singleton_broadcast(loc, concentration, batch_shape):
        raise ValueError(
            f"{name}: concentration of shape {tuple(concentration.shape)} ends in a singleton dimension, "
            f"which broadcasts against the batch shape of loc {tuple(loc.shape[:-1])} to the batch shape "
            f"{tuple(batch_shape)}: one distribution for every pair of rows. For one concentration per "
            f"mean direction pass concentration.squeeze(-1); if the pairs are meant, expand it first "
            f"(concentration.expand({tuple(batch_shape)})) or pass validate_args=False"
        )
    return loc.expand(batch_shape + loc.shape[-1:]), concentration.expand(batch_shape)


def _trailing_singleton_broadcast(loc, concentration, batch_shape) -> bool:
    """A concentration shaped (B, 1) beside loc shaped (B, m): the habit of code that keeps kappa as
    a column silently gives batch shape (B, B) under torch's broadcasting."""
    return (
        concentration.dim() >= 1 and concentration.shape[-1] == 1
        and loc.dim() >= 2 and loc.shape[-2] != 1
        and batch_shape != loc.shape[:-1]
    )


def nonnegative(kl: torch.Tensor, concentration: torch.Tensor | None = None) -> torch.Tensor:
    """A KL whose rounding residue below 0 is set to 0, keeping its gradient: the residue is of
    the order of eps times the size of the cancelling terms, while the gradient is computed
    from an accurate analytic expression and must not be lost where the KL is tiny.

    With the ``concentration`` of a KL to the uniform distribution, the KL is also exactly 0,
    with gradient 0, where the concentration is 0 (the terms' rounding would leave ~1e-16 there).
    """
    kl = torch.where(kl < 0, kl - kl.detach(), kl)
    return kl if concentration is None else torch.where(concentration > 0, kl, 0.0)


class EagerlyValidated(Distribution):
    """Validation (``validate_args``) in eager code only: inside torch.compile and torch.func
    transforms a check would synchronise with the device, break the graph or fail under vmap."""

    def _validate_sample(self, value: torch.Tensor) -> None:
        if not native.transformed():
            super()._validate_sample(value)


class SphericalDistribution(EagerlyValidated):
    """Base class: ``loc`` (..., m) unit vectors, ``concentration`` (...) >= 0 and finite; event shape (m,).

    Parameters of any floating dtype are kept as given; half-precision ones are computed with in
    float32 (:func:`compute_dtype`) and every result comes back in the parameters' dtype. Arguments
    and samples are validated in eager code only (:class:`EagerlyValidated`).
    """

    arg_constraints = {"loc": sphere, "concentration": nonnegative_finite}
    support = sphere
    has_rsample = True

    def __init__(self, loc, concentration, *, validate_args=None):
        if native.transformed():  # see EagerlyValidated
            validate_args = False
        validate = Distribution._validate_args if validate_args is None else validate_args
        self.loc, self.concentration = broadcast_parameters(type(self).__name__, loc, concentration, validate)
        super().__init__(self.concentration.shape, self.loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.concentration = self.concentration.expand(batch_shape)
        super(SphericalDistribution, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def dim(self) -> int:
        """Ambient dimension m."""
        return self.event_shape[0]

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    def _wide_concentration(self) -> torch.Tensor:
        """kappa in the special functions' computation dtype (float64 but on Apple MPS)."""
        return self.concentration.to(wide_dtype(self.concentration))

    def _computing(self):
        """(loc, concentration) in the dtype computations run in (:func:`compute_dtype`)."""
        dtype = compute_dtype(self.loc.dtype)
        return self.loc.to(dtype), self.concentration.to(dtype)

    def _returned(self, value: torch.Tensor) -> torch.Tensor:
        """A result in the parameters' dtype."""
        return value.to(self.loc.dtype)
