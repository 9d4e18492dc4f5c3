r"""The Power Spherical distribution (De Cao & Aziz, 2020): a rejection-free alternative to the vMF."""
from __future__ import annotations

import math

import torch
from torch.distributions import Dirichlet

from svae.distributions.householder import rotate_from_pole, tangent_directions
from svae.distributions.spherical import SphericalDistribution

__all__ = ["PowerSpherical"]


class PowerSpherical(SphericalDistribution):
    r"""Power Spherical distribution :math:`p(z) \propto (1 + \mu^T z)^\kappa` on :math:`S^{m-1}`.

    :math:`t = (1 + \mu^T z)/2 \sim \mathrm{Beta}(\alpha, \beta)` with
    :math:`\alpha = (m-1)/2 + \kappa`, :math:`\beta = (m-1)/2`; a Householder reflection places it
    around ``loc``. Sampling is fully reparameterised (no rejection), so ``rsample`` gradients are
    exact. Same interface as :class:`~svae.distributions.VonMisesFisher`.

    Args:
        loc: mean direction, shape ``(..., m)``, unit norm, ``m >= 2``.
        concentration: :math:`\kappa \ge 0`, shape broadcastable with ``loc.shape[:-1]``.

    Reference:
        De Cao and Aziz, The Power Spherical distribution, 2020.
    """

    def _beta_parameters(self):
        beta = 0.5 * (self.dim - 1)
        return self.concentration + beta, beta

    def _log_normalizer(self) -> torch.Tensor:
        """log of 2^(a+b) pi^b Gamma(a) / Gamma(a+b), the integral of (1 + mu^T z)^kappa."""
        alpha, beta = self._beta_parameters()
        return (alpha + beta) * math.log(2) + beta * math.log(math.pi) + torch.lgamma(alpha) - torch.lgamma(alpha + beta)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)[:-1]
        # the directions before the cosine, whose random numbers vary in count: see tangent_directions
        v = tangent_directions(shape, self.dim, dtype=self.loc.dtype, device=self.loc.device)
        alpha, beta = self._beta_parameters()
        concentrations = torch.stack([alpha, torch.full_like(alpha, beta)], -1).expand(shape + (2,))
        t = Dirichlet(concentrations, validate_args=False).rsample()  # (t, 1 - t), both accurate
        return rotate_from_pole(self.loc, 2 * t[..., 1], 2 * t[..., 0], v)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # 1 + mu^T z as |z + mu|^2 / 2 keeps its precision near the antipode.
        one_plus_w = 0.5 * (value + self.loc).square().sum(-1)
        return torch.xlogy(self.concentration, one_plus_w) - self._log_normalizer()

    def entropy(self) -> torch.Tensor:
        alpha, beta = self._beta_parameters()
        expected_log = math.log(2) + torch.digamma(alpha) - torch.digamma(alpha + beta)  # E[log(1 + w)]
        return self._log_normalizer() - self.concentration * expected_log

    @property
    def mean(self) -> torch.Tensor:
        kappa = self.concentration
        return (kappa / (kappa + self.dim - 1)).unsqueeze(-1) * self.loc

    @property
    def variance(self) -> torch.Tensor:
        """Diagonal of Var(w) mu mu^T + E[1 - w^2] / (m - 1) (I - mu mu^T), with w = 2t - 1."""
        alpha, beta = self._beta_parameters()
        total = alpha + beta
        var_w = 4 * alpha * beta / (total.square() * (total + 1))
        mean_w = (alpha - beta) / total
        tangential = (1 - var_w - mean_w.square()) / (self.dim - 1)
        loc_sq = self.loc.square()
        return var_w.unsqueeze(-1) * loc_sq + tangential.unsqueeze(-1) * (1 - loc_sq)
