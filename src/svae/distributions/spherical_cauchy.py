r"""The Spherical Cauchy distribution (Kato & McCullagh, 2020): the Möbius image of a uniform direction."""
from __future__ import annotations

import torch
from torch.distributions import constraints

from svae.distributions.householder import uniform_directions
from svae.distributions.hyperspherical_uniform import log_sphere_area
from svae.distributions.spherical import SphericalDistribution, nonnegative
from svae.distributions.spherical_cauchy_terms import kl_to_uniform, mean_length
from svae.distributions.constraints import sphere
from svae.special import wide_dtype

__all__ = ["SphericalCauchy"]


class SphericalCauchy(SphericalDistribution):
    r"""Spherical Cauchy distribution on :math:`S^{d} \subset \mathbb{R}^{m}`, :math:`d = m - 1`:

    .. math:: q(z) = \frac{1}{|S^d|} \left(\frac{1 - \rho^2}{|z - \rho\mu|^2}\right)^{d}.

    With :math:`\phi = \rho \mu` inside the unit ball, a sample is the image of a uniform direction
    :math:`y` under the Möbius map that takes 0 to :math:`\phi`,
    :math:`z = ((1 - \rho^2) y + 2 (1 + \phi^T y) \phi) / |y + \phi|^2`: no rejection and no special
    function, and ``rsample`` is exactly reparameterised. Heavy-tailed: at the antipode the
    density is :math:`((1 - \rho)/(1 + \rho))^{2d}` times its value at ``loc``, a power of
    :math:`1 - \rho` where a vMF's ratio is :math:`e^{-2\kappa}`. ``concentration = 0`` is the uniform
    distribution. Same interface as :class:`~svae.distributions.VonMisesFisher`.

    :meth:`entropy`, the KL to :class:`~svae.distributions.HypersphericalUniform` and :attr:`mean`
    are exact: finite sums for odd ``d``, for even ``d`` series and ``atanh`` forms
    (:mod:`svae.distributions.spherical_cauchy_terms`), in float64, rounded once.

    Args:
        loc: mean direction :math:`\mu`, shape ``(..., m)``, unit norm, ``m >= 2``.
        concentration: :math:`\rho \in [0, 1)`, Kato and McCullagh's concentration (the length of
            :math:`\phi`), shape broadcastable with ``loc.shape[:-1]``. Near 1 the density at ``loc``
            grows like :math:`(1 - \rho)^{-d}`; in float32, :math:`\rho` closer to 1 than about 6e-8
            rounds to 1, outside the support of the parameter.

    Example:
        >>> q = SphericalCauchy(torch.tensor([0.0, 0.0, 1.0]), torch.tensor(0.9))
        >>> z = q.rsample((4,))  # (4, 3), differentiable in loc and concentration
        >>> q.log_prob(z).shape
        torch.Size([4])

    Reference:
        Kato and McCullagh, Some properties of a Cauchy family on the sphere derived from the Möbius
        transformations, Bernoulli 26(4), 2020.
    """

    arg_constraints = {"loc": sphere, "concentration": constraints.half_open_interval(0.0, 1.0)}

    @property
    def _degrees(self) -> int:
        return self.dim - 1

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)[:-1]
        loc, rho = self._computing()
        y = uniform_directions(shape, self.dim, dtype=loc.dtype, device=loc.device)
        rho = rho.expand(shape).unsqueeze(-1)
        # 1 + mu^T y from |y + mu|^2 / 2, which keeps its precision where y is near -mu; there the
        # denominator |y + phi|^2 = (1 - rho)^2 + 2 rho (1 + mu^T y) is small and the map stretches.
        one_plus_cos = 0.5 * (y + loc).square().sum(-1, keepdim=True)
        denominator = (1 - rho) ** 2 + 2 * rho * one_plus_cos
        shift = 2 * ((1 - rho) + rho * one_plus_cos) * rho  # 2 (1 + phi^T y) rho
        z = ((1 - rho) * (1 + rho) * y + shift * loc) / denominator
        return self._returned(torch.nn.functional.normalize(z, dim=-1))  # |z| = 1 to rounding: make it exact

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        loc, _ = self._computing()
        wide = wide_dtype(loc)
        rho = self._wide_concentration()
        # |z - phi|^2 = (1 - rho)^2 + rho |z - mu|^2, exact near loc where 1 - mu^T z would cancel
        distance = (1 - rho) ** 2 + rho * (value.to(wide) - loc.to(wide)).square().sum(-1)
        log_ratio = torch.log1p(-rho) + torch.log1p(rho) - torch.log(distance)
        return self._returned(self._degrees * log_ratio - log_sphere_area(self.dim))

    def _kl_to_uniform(self) -> torch.Tensor:
        """KL(q || uniform) in float64, 0 at rho = 0 and never negative."""
        rho = self._wide_concentration()
        return nonnegative(kl_to_uniform(rho, self._degrees), rho)

    def entropy(self) -> torch.Tensor:
        return self._returned(log_sphere_area(self.dim) - self._kl_to_uniform())

    @property
    def mean(self) -> torch.Tensor:
        loc, _ = self._computing()
        length = mean_length(self._wide_concentration(), self._degrees).to(loc.dtype)
        return self._returned(length.unsqueeze(-1) * loc)
