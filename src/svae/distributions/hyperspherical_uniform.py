"""The uniform distribution on the unit sphere S^{m-1} in R^m."""
from __future__ import annotations

import math

import torch

from svae.distributions.constraints import sphere
from svae.distributions.householder import uniform_directions
from svae.distributions.spherical import EagerlyValidated, compute_dtype

__all__ = ["HypersphericalUniform", "log_sphere_area"]


def log_sphere_area(dim: int) -> float:
    """log |S^{dim-1}| = log(2 pi^(dim/2) / Gamma(dim/2)), the surface area of the unit sphere in R^dim."""
    return math.log(2) + 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim)


def check_dim(dim, name: str = "dim", minimum: int = 1) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < minimum:
        raise ValueError(
            f"{name} must be an int >= {minimum}: the ambient dimension m of the sphere S^(m-1) "
            f"in R^m, got {dim!r}"
        )
    return dim


class HypersphericalUniform(EagerlyValidated):
    r"""Uniform distribution on the unit sphere :math:`S^{m-1} \subset \mathbb{R}^m`.

    Args:
        dim: the ambient dimension ``m`` (samples are unit vectors in ``R^m``), as everywhere in svae.
        batch_shape: batch shape of the distribution.
        dtype, device: of samples and densities (defaults: torch's default dtype, CPU).

    Example:
        >>> p = HypersphericalUniform(3, batch_shape=(2,))
        >>> p.sample((5,)).shape
        torch.Size([5, 2, 3])
    """

    arg_constraints = {}
    support = sphere
    has_rsample = True  # samples do not depend on any parameter

    def __init__(self, dim: int, *, batch_shape=(), dtype=None, device=None, validate_args=None):
        self.dim = check_dim(dim)
        self._dtype = dtype if dtype is not None else torch.get_default_dtype()
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        super().__init__(torch.Size(batch_shape), torch.Size([dim]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(HypersphericalUniform, _instance)
        new.dim, new._dtype, new._device = self.dim, self._dtype, self._device
        super(HypersphericalUniform, new).__init__(
            torch.Size(batch_shape), self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    @property
    def log_area(self) -> float:
        return log_sphere_area(self.dim)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)[:-1]
        z = uniform_directions(shape, self.dim, dtype=compute_dtype(self._dtype), device=self._device)
        return z.to(self._dtype)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        return torch.full(shape, -self.log_area, dtype=value.dtype, device=value.device)

    def entropy(self) -> torch.Tensor:
        return torch.full(self.batch_shape, self.log_area, dtype=self._dtype, device=self._device)

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros(self._extended_shape(), dtype=self._dtype, device=self._device)

    @property
    def variance(self) -> torch.Tensor:
        return torch.full(self._extended_shape(), 1 / self.dim, dtype=self._dtype, device=self._device)
