r"""The Power Spherical distribution (De Cao & Aziz, 2020): a rejection-free alternative to the vMF."""
from __future__ import annotations

import math

import torch

from svae.distributions.householder import rotate_from_pole, tangent_directions
from svae.distributions.hyperspherical_uniform import log_sphere_area
from svae.distributions.power_spherical_terms import kl_to_uniform, log_normalizer_growth
from svae.distributions.spherical import SphericalDistribution, nonnegative
from svae.special import wide_dtype

__all__ = ["PowerSpherical"]


class PowerSpherical(SphericalDistribution):
    r"""Power Spherical distribution :math:`p(z) \propto (1 + \mu^T z)^\kappa` on :math:`S^{m-1}`.

    :math:`t = (1 + \mu^T z)/2 \sim \mathrm{Beta}(\alpha, \beta)` with
    :math:`\alpha = (m-1)/2 + \kappa`, :math:`\beta = (m-1)/2`; a Householder reflection places it
    around ``loc``. Sampling is fully reparameterised (no rejection), so ``rsample`` gradients are
    exact. Same interface as :class:`~svae.distributions.VonMisesFisher`.

    The normaliser, entropy and KL are differences of log-gamma and digamma values that cancel
    like ``eps * kappa`` when formed from ``lgamma``/``digamma``; they are computed with the large
    terms cancelled by hand (:mod:`svae.distributions.power_spherical_terms`), in float64, and
    rounded once.

    Args:
        loc: mean direction, shape ``(..., m)``, unit norm, ``m >= 2``.
        concentration: :math:`\kappa \ge 0`, finite, shape broadcastable with ``loc.shape[:-1]``.

    Reference:
        De Cao and Aziz, The Power Spherical distribution, 2020.
    """

    @property
    def _beta(self) -> float:
        return 0.5 * (self.dim - 1)

    def _log_density_at_loc(self) -> torch.Tensor:
        r"""log p(loc) = :math:`\log\Gamma(\alpha+\beta) - \log\Gamma(\alpha) - \beta \log 4\pi`, in float64:
        with :math:`t = (1 + \mu^T z)/2`, log p(z) = kappa log t + log p(loc)."""
        beta = self._beta
        at_zero = math.lgamma(2 * beta) - math.lgamma(beta) - beta * math.log(4 * math.pi)
        return at_zero + log_normalizer_growth(self._wide_concentration(), beta)

    def _kl_to_uniform(self) -> torch.Tensor:
        """KL(p || uniform) in float64 (:mod:`svae.distributions.power_spherical_terms`): exactly 0,
        with gradient 0, at kappa = 0, and never negative (:func:`nonnegative`)."""
        kappa = self._wide_concentration()
        return nonnegative(kl_to_uniform(kappa, self._beta), kappa)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)[:-1]
        loc, kappa = self._computing()
        # the directions before the cosine, whose random numbers vary in count: see tangent_directions
        v = tangent_directions(shape, self.dim, dtype=loc.dtype, device=loc.device)
        t, one_minus_t = self._beta_sample(kappa.expand(shape))
        # The density is 0 at the antipode, and a sample whose 1 + w is below about eps^2 rounds
        # onto it (in float32 at m = 2 and small kappa, 1 in 3e7 samples), where log_prob is -inf.
        # Such draws (probability about 2 eps) are placed at 1 + w = 4 eps^2, a distance of 2.8 eps
        # from the antipode, which the rounded sample keeps.
        one_plus_w = (2 * t).to(loc.dtype).clamp_min(4 * torch.finfo(loc.dtype).eps ** 2)
        return self._returned(rotate_from_pole(loc, (2 * one_minus_t).to(loc.dtype), one_plus_w, v))

    def _beta_sample(self, kappa: torch.Tensor):
        """(t, 1 - t), t ~ Beta(beta + kappa, beta), as G_a / (G_a + G_b) with G_a ~ Gamma(beta + kappa)
        and G_b ~ Gamma(beta), drawn in float64 (the special functions' dtype), differentiable in kappa.

        Only G_a depends on kappa: its pathwise derivative is torch's implicit Gamma gradient, which
        stays finite at any shape, where torch's Dirichlet gradient is not (non-finite for
        kappa >= 1e7 in float32, at 1e20 in float64). Float64 also keeps the draws from
        underflowing: float32 Gamma(1/2) samplers on CUDA return exact zeros, whose gradient is
        0 * inf. A draw that still underflows is held at the smallest normal number.
        """
        beta = self._beta
        alpha = kappa.to(wide_dtype(kappa)) + beta
        tiny = torch.finfo(alpha.dtype).tiny
        g_a = torch._standard_gamma(alpha.detach())
        held = g_a < tiny
        g_a = g_a.clamp_min(tiny)
        if alpha.requires_grad:  # d G_a / d alpha; a held draw has none
            slope = torch._standard_gamma_grad(alpha.detach(), g_a)
            # torch's series overflows above alpha ~ 1e77; there G = alpha + sqrt(alpha) N to
            # far below rounding, whose derivative is 1 + N / (2 sqrt(alpha)) = (G + alpha) / (2 alpha)
            slope = torch.where(torch.isfinite(slope), slope, (g_a + alpha.detach()) / (2 * alpha.detach()))
            g_a = g_a + (alpha - alpha.detach()) * torch.where(held, 0.0, slope)
        g_b = torch._standard_gamma(torch.full_like(g_a, beta))
        total = g_a + g_b
        return g_a / total, g_b / total

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        loc, _ = self._computing()
        value = value.to(loc.dtype)
        # log t with t = (1 + mu^T z)/2, from whichever of t = |z + mu|^2/4 and 1 - t = |z - mu|^2/4
        # is the smaller: each keeps its relative precision (near the antipode and near loc). The
        # squares and the rest run in float64: squares of float32 differences underflow near the
        # poles, and kappa log t and log p(loc) are large and cancel (at m = 2048, kappa = 1e4
        # float32 arithmetic loses 4e-6 of the result).
        wide = wide_dtype(loc)
        one_minus_t = 0.25 * (value - loc).to(wide).square().sum(-1)
        t = 0.25 * (value + loc).to(wide).square().sum(-1)
        kappa = self._wide_concentration()
        near = one_minus_t <= 0.5
        log_t = torch.where(near, torch.log1p(-one_minus_t.clamp(max=0.5)), torch.log(t.clamp(min=0.5)))
        far = torch.xlogy(kappa, t)  # 0 at kappa = 0, also at the antipode
        scaled = torch.where(near, kappa * log_t, far)
        return self._returned(scaled + self._log_density_at_loc())

    def entropy(self) -> torch.Tensor:
        return self._returned(log_sphere_area(self.dim) - self._kl_to_uniform())

    @property
    def mean(self) -> torch.Tensor:
        loc, kappa = self._computing()
        return self._returned((kappa / (kappa + (self.dim - 1))).unsqueeze(-1) * loc)

    @property
    def variance(self) -> torch.Tensor:
        """Diagonal of Var(w) mu mu^T + E[1 - w^2] / (m - 1) (I - mu mu^T), with w = 2t - 1:
        Var(w) = 4 a b / (s^2 (s + 1)) and E[1 - w^2] = 4 E[t (1 - t)] = 4 a b / (s (s + 1)),
        s = a + b, written as products of ratios (no cancellation, no overflow)."""
        loc, _ = self._computing()
        beta, kappa = self._beta, self._wide_concentration()
        total = kappa + 2 * beta
        share_a, share_b = (kappa + beta) / total, beta / total
        radial = 4 * share_a * share_b / (total + 1)
        tangential = 2 * share_a / (total + 1)  # E[1 - w^2] / (m - 1), with m - 1 = 2 beta
        loc_sq = loc.square()
        variance = radial.to(loc.dtype).unsqueeze(-1) * loc_sq + tangential.to(loc.dtype).unsqueeze(-1) * (1 - loc_sq)
        return self._returned(variance)
