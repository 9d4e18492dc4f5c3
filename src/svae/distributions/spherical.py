"""What the von Mises-Fisher and Power Spherical distributions share: a mean direction on the
sphere and a non-negative concentration, broadcast to one batch shape."""
from __future__ import annotations

import torch
from torch.distributions import Distribution, constraints

from svae.distributions.constraints import sphere


def broadcast_parameters(name: str, loc, concentration):
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
    return loc.expand(batch_shape + loc.shape[-1:]), concentration.expand(batch_shape)


class SphericalDistribution(Distribution):
    """Base class: ``loc`` (..., m) unit vectors, ``concentration`` (...) >= 0; event shape (m,)."""

    arg_constraints = {"loc": sphere, "concentration": constraints.nonnegative}
    support = sphere
    has_rsample = True

    def __init__(self, loc, concentration, *, validate_args=None):
        self.loc, self.concentration = broadcast_parameters(type(self).__name__, loc, concentration)
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
