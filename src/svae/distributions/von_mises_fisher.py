r"""The von Mises-Fisher distribution on the unit sphere :math:`S^{m-1} \subset \mathbb{R}^m`."""
from __future__ import annotations

import math

import torch

from svae.distributions.householder import rotate_from_pole, tangent_directions
from svae.distributions.hyperspherical_uniform import log_sphere_area
from svae.distributions.spherical import SphericalDistribution, nonnegative
from svae.distributions.wood import accepted_complements, envelope_b, wood_sample
from svae.special import iv_ratio_and_complement, log_ive_over_power, log_ive_over_power_and_ratio

__all__ = ["VonMisesFisher"]


class VonMisesFisher(SphericalDistribution):
    r"""von Mises-Fisher distribution :math:`q(z) = C_m(\kappa) \exp(\kappa \mu^T z)` on :math:`S^{m-1}`.

    :math:`C_m(\kappa) = \kappa^{v} / ((2\pi)^{m/2} I_v(\kappa))` with :math:`v = m/2 - 1`;
    ``concentration = 0`` is the uniform distribution.

    Sampling follows Ulrich (1984) and Wood (1994): the cosine :math:`\omega = \mu^T z` is drawn
    by rejection from a Beta proposal (several proposals per round, all samples at once) or, for
    ``m = 3``, exactly by its inverse CDF; a Householder reflection then places it around ``loc``.
    ``rsample`` carries the pathwise gradient :math:`g_{rep}`; :meth:`rejection_log_weight`
    supplies the correction :math:`g_{cor}` of Naesseth et al. (2017) for unbiased gradients.

    Args:
        loc: mean direction, shape ``(..., m)``, unit norm, ``m >= 2``.
        concentration: :math:`\kappa \ge 0`, shape broadcastable with ``loc.shape[:-1]``
            (a batch shape: no trailing singleton dimension).

    Example:
        >>> q = VonMisesFisher(torch.tensor([0.0, 0.0, 1.0]), torch.tensor(10.0))
        >>> z = q.rsample((4,))  # (4, 3), differentiable in loc and concentration
        >>> q.log_prob(z).shape
        torch.Size([4])

    References:
        Davidson et al., Hyperspherical Variational Auto-Encoders, UAI 2018.
        Wood, Simulation of the von Mises Fisher distribution, 1994.
        Naesseth et al., Reparameterization Gradients through Acceptance-Rejection Sampling, 2017.
    """

    @property
    def _order(self) -> float:
        return self.dim / 2 - 1

    def _bessel_terms(self, kappa: torch.Tensor):
        """(log(I_v(k) e^-k k^-v), A_m(k), 1 - A_m(k)) with A_m = I_{m/2} / I_{m/2-1}, in one
        evaluation, at ``kappa`` (:meth:`_wide_concentration`)."""
        return log_ive_over_power_and_ratio(self._order, kappa, rounded=False)

    # --- densities -------------------------------------------------------------------------------
    # The terms of the log-normaliser, the entropy and the KL grow like m log m and cancel to a
    # value that can be near 0 (the KL at small kappa): they are combined in the special
    # functions' float64 and rounded once, so a float32 result is the float64 one, rounded.

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        loc, _ = self._computing()
        # 1 - mu^T z as |z - mu|^2 / 2 keeps its relative precision when z is close to mu; the
        # sum runs in the sample's dtype, the rest with the normaliser in float64.
        kappa = self._wide_concentration()
        one_minus_w = 0.5 * (value.to(loc.dtype) - loc).square().sum(-1).to(kappa.dtype)
        return self._returned(self._log_normalizer(kappa) - kappa * one_minus_w)

    def _log_normalizer(self, kappa: torch.Tensor) -> torch.Tensor:
        """log C_m(kappa) + kappa at ``kappa`` (:meth:`_wide_concentration`), written so that
        kappa = 0 and kappa -> inf are both exact."""
        return -0.5 * self.dim * math.log(2 * math.pi) - log_ive_over_power(self._order, kappa, rounded=False)

    def _kl_to_uniform(self) -> torch.Tensor:
        r"""KL(q || uniform) in the computation dtype: :math:`[g(0) - g(\kappa)] - \kappa (1 - A)` with
        :math:`g(\kappa) = \log(I_v(\kappa) e^{-\kappa} \kappa^{-v})`, :math:`g(0) = -v \log 2 - \log\Gamma(v + 1)`.

        Exactly 0 at kappa = 0; elsewhere the rounding of terms of size m log m can leave a
        value of about 1e-16 m log m below the true one, which is set to 0 (:func:`nonnegative`).
        """
        kappa = self._wide_concentration()
        log_over_power, _, complement = self._bessel_terms(kappa)
        v = self._order
        kl = (-v * math.log(2) - math.lgamma(v + 1)) - log_over_power - kappa * complement
        return nonnegative(kl, kappa)

    def entropy(self) -> torch.Tensor:
        return self._returned(log_sphere_area(self.dim) - self._kl_to_uniform())

    # --- moments ---------------------------------------------------------------------------------

    @property
    def mean(self) -> torch.Tensor:
        loc, _ = self._computing()
        mean_length, _ = iv_ratio_and_complement(self.dim / 2, self.concentration, rounded=False)
        return self._returned(mean_length.to(loc.dtype).unsqueeze(-1) * loc)

    @property
    def variance(self) -> torch.Tensor:
        r"""Diagonal of :math:`\mathrm{Cov}(z) = A' \mu\mu^T + (A/\kappa)(I - \mu\mu^T)`.

        :math:`A' = 1 - A^2 - (m-1) A / \kappa` loses relative precision like ``eps * kappa`` at
        very large concentrations (a difference of two terms of size ``(m-1)/kappa``); it is
        computed in float64, so that float32 results stay exact to rounding up to kappa = 1e8.
        """
        m = self.dim
        loc, _ = self._computing()
        mean_length, complement = iv_ratio_and_complement(m / 2, self.concentration, rounded=False)
        kappa = self.concentration.to(complement.dtype)
        positive = kappa > 0
        a_over_k = torch.where(positive, mean_length / torch.where(positive, kappa, 1.0), 1 / m)
        a_prime = complement * (1 + mean_length) - (m - 1) * a_over_k
        loc_sq = loc.square()
        variance = a_prime.to(loc.dtype).unsqueeze(-1) * loc_sq + a_over_k.to(loc.dtype).unsqueeze(-1) * (1 - loc_sq)
        return self._returned(variance)

    # --- sampling --------------------------------------------------------------------------------

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)[:-1]
        loc, kappa = self._computing()
        kappa = kappa.expand(shape)
        # the directions before the cosine, whose random numbers vary in count: see tangent_directions
        v = tangent_directions(shape, self.dim, dtype=loc.dtype, device=loc.device)
        if self.dim == 3:
            one_minus_w = self._inverse_cdf_one_minus_w(kappa)
            return self._returned(rotate_from_pole(loc, one_minus_w, 2 - one_minus_w, v))
        p, q = accepted_complements(kappa.detach(), self.dim)
        return self._returned(wood_sample(loc, kappa, p, q, v))

    def _inverse_cdf_one_minus_w(self, kappa: torch.Tensor) -> torch.Tensor:
        """m = 3: 1 - w = -log(u + (1-u) e^{-2k}) / k exactly, with u ~ U(0, 1]."""
        u = 1 - torch.rand(kappa.shape, dtype=kappa.dtype, device=kappa.device)
        # Below sqrt(eps) the series 2(1-u)(1 - k u) + O(k^2) is exact to rounding, and finite at k = 0.
        small = kappa < torch.finfo(kappa.dtype).eps ** 0.5
        safe = torch.where(small, torch.ones_like(kappa), kappa)
        exact = -torch.log1p((1 - u) * torch.expm1(-2 * safe)) / safe
        return torch.where(small, 2 * (1 - u) * (1 - kappa * u), exact)

    def rejection_log_weight(self, value: torch.Tensor) -> torch.Tensor:
        r"""``log(g(w) / r(w))`` at the accepted proposal that produced ``value``, differentiable in
        the parameters with that proposal held fixed.

        ``g`` is the density of :math:`\omega = \mu^T z` under the vMF and ``r`` the density of the
        proposal ``h(eps, kappa)``; the proposal ``eps`` is recovered from ``value`` itself. Its
        gradient is the correction term of Naesseth et al. (2017): for any ``f``,
        ``f(z) + f(z).detach() * (w - w.detach())`` with ``w = q.rejection_log_weight(z.detach())``
        has the unbiased gradient :math:`g_{rep} + g_{cor}` of :math:`E_q[f(z)]`.
        For ``m = 3`` the sampler is rejection-free and the weight is 0.

        Args:
            value: samples from this distribution, shape ``sample_shape + batch_shape + (m,)``.
        """
        if self._validate_args:
            self._validate_sample(value)
        loc, kappa = self._computing()
        value = value.detach().to(loc.dtype)
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        if self.dim == 3:
            return self._returned((kappa * 0).expand(shape))
        # The sums run in the sample's dtype, the rest in float64: the constant and g(kappa) are
        # of size m log m and cancel, and in float32 b ~ (m-1)/(4 kappa) leaves the normal range
        # (1/b overflows) for kappa above 1e37.
        kappa = self._wide_concentration()
        loc = loc.detach()
        one_minus_w = 0.5 * (value - loc).square().sum(-1).to(kappa.dtype)
        one_plus_w = 0.5 * (value + loc).square().sum(-1).to(kappa.dtype)
        b = envelope_b(kappa, self.dim)
        b0 = b.detach()
        eps = one_minus_w / (one_minus_w + b0 * one_plus_w)  # the proposal: h(eps, b0) = w
        denom = 1 - (1 - b) * eps
        one_minus_h = 2 * b * eps / denom
        m = self.dim
        alpha = 0.5 * (m - 1)
        const = (
            -0.5 * m * math.log(2 * math.pi) + log_sphere_area(m - 1) + (m - 2) * math.log(2)
            + 2 * math.lgamma(alpha) - math.lgamma(2 * alpha)
        )
        normalizer = const - log_ive_over_power(self._order, kappa, rounded=False)
        log_weight = normalizer - kappa * one_minus_h + alpha * (torch.log(b) - 2 * torch.log(denom))
        return self._returned(log_weight.expand(shape))
