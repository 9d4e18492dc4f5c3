r"""Latent families: how an encoder's raw outputs become a posterior, its prior and its KL.

One object per family, shared by every model (MNIST VAEs, graph VAEs, the synthetic experiment):

* ``normal``: :math:`\mathcal{N}(\mu, \sigma^2 I)` in :math:`\mathbb{R}^d`, prior :math:`\mathcal{N}(0, I)`;
* ``vmf``: von Mises-Fisher on :math:`S^d \subset \mathbb{R}^{d+1}`, prior uniform on :math:`S^d`;
* ``power``: Power Spherical on :math:`S^d`, prior uniform on :math:`S^d`;
* ``cauchy``: Spherical Cauchy on :math:`S^d`, prior uniform on :math:`S^d`.

``dim`` is always the number of degrees of freedom ``d``: an N-VAE with ``d = 10`` and an S-VAE
with ``d = 10`` (codes in ``R^11``) have equally many latent dimensions, as in the paper.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from svae.distributions import HypersphericalUniform, PowerSpherical, SphericalCauchy, VonMisesFisher
from svae.distributions.hyperspherical_uniform import log_sphere_area

FAMILIES = ("normal", "vmf", "power", "cauchy")


class LatentFamily:
    """Base class: maps ``num_params`` raw encoder outputs to a posterior over ``code_dim``-vectors."""

    name: str
    num_params: int
    code_dim: int

    def __init__(self, dim: int):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"latent dim must be an int >= 1 (degrees of freedom), got {dim!r}")
        self.dim = dim

    def posterior(self, raw: torch.Tensor) -> Distribution:
        raise NotImplementedError

    def kl(self, q: Distribution) -> torch.Tensor:
        """KL(q || prior), one value per batch element."""
        raise NotImplementedError

    def point(self, q: Distribution) -> torch.Tensor:
        """The deterministic code of a posterior (used for evaluation): the mean or the mode."""
        raise NotImplementedError

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) under the prior, one value per code."""
        raise NotImplementedError

    def rejection_log_weight(self, q: Distribution, z: torch.Tensor) -> torch.Tensor | None:
        """log(g/r) of the rejection sampler behind ``z`` (see VonMisesFisher), or None."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


class NormalLatent(LatentFamily):
    """Diagonal Gaussian; the scale is ``softplus(raw)`` (the S-VAE paper's MNIST protocol) or
    ``exp(raw)`` (Kipf & Welling's log standard deviation, clamped at exp(10) as PyG does)."""

    name = "normal"

    def __init__(self, dim: int, scale: str = "softplus"):
        super().__init__(dim)
        if scale not in ("softplus", "exp"):
            raise ValueError(f"scale must be 'softplus' or 'exp', got {scale!r}")
        self.scale = scale
        self.num_params, self.code_dim = 2 * dim, dim

    def posterior(self, raw):
        loc, raw_scale = raw.split(self.dim, dim=-1)
        scale = F.softplus(raw_scale) if self.scale == "softplus" else raw_scale.clamp(max=10).exp()
        return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)

    def kl(self, q):
        base = q.base_dist
        # closed form of KL(N(mu, s^2) || N(0, 1)) summed over dimensions
        return 0.5 * (base.loc.square() + base.scale.square() - 1 - 2 * base.scale.log()).sum(-1)

    def point(self, q):
        return q.base_dist.loc

    def prior_log_prob(self, z):
        return -0.5 * (z.square() + math.log(2 * math.pi)).sum(-1)


class _SphericalLatent(LatentFamily):
    """Mean direction ``normalize(raw[..., :d+1])`` and concentration ``softplus(raw[..., -1]) + 1``
    (the S-VAE paper's parameterisation: kappa >= 1 keeps the posterior away from the prior)."""

    distribution: type

    def __init__(self, dim: int):
        super().__init__(dim)
        self.code_dim = dim + 1
        self.num_params = dim + 2

    def posterior(self, raw):
        loc = F.normalize(raw[..., :-1], dim=-1)
        concentration = F.softplus(raw[..., -1]) + 1
        return self.distribution(loc, concentration, validate_args=False)

    def kl(self, q):
        prior = HypersphericalUniform(self.code_dim, dtype=q.loc.dtype, device=q.loc.device, validate_args=False)
        return kl_divergence(q, prior)

    def point(self, q):
        return q.loc

    def prior_log_prob(self, z):
        return z.new_full(z.shape[:-1], -log_sphere_area(self.code_dim))


class VonMisesFisherLatent(_SphericalLatent):
    name = "vmf"
    distribution = VonMisesFisher

    def rejection_log_weight(self, q, z):
        return q.rejection_log_weight(z.detach())


class PowerSphericalLatent(_SphericalLatent):
    name = "power"
    distribution = PowerSpherical


class SphericalCauchyLatent(_SphericalLatent):
    """Mean direction as the others; concentration ``rho = sigmoid(raw[..., -1])`` in (0, 1), the raw
    value capped at 15 (1 - rho >= 3e-7, which float32 still tells from 0; a vMF would need
    kappa ~ 1e13 d to be as concentrated)."""

    name = "cauchy"
    distribution = SphericalCauchy

    def posterior(self, raw):
        loc = F.normalize(raw[..., :-1], dim=-1)
        return SphericalCauchy(loc, torch.sigmoid(raw[..., -1].clamp(max=15.0)), validate_args=False)


def latent_family(name: str, dim: int, spheres: int = 1, **options) -> LatentFamily:
    """``normal``, ``vmf``, ``power`` or ``cauchy`` with ``dim`` degrees of freedom; for the spherical families,
    ``spheres > 1`` splits them over a product of spheres (:mod:`svae.nn.product`)."""
    classes = {"normal": NormalLatent, "vmf": VonMisesFisherLatent, "power": PowerSphericalLatent,
               "cauchy": SphericalCauchyLatent}
    if name not in classes:
        raise ValueError(f"latent must be one of {list(FAMILIES)}, got {name!r}")
    if type(spheres) is int and spheres == 1:  # exactly today's single sphere (or Gaussian); not True or 1.0
        return classes[name](dim, **options)
    if name == "normal":
        raise ValueError(f"spheres other than 1 applies to the spherical families (vmf, power, cauchy), not "
                         f"{name!r}; got {spheres!r}")
    from svae.nn.product import ProductOfSpheres

    return ProductOfSpheres(lambda d: classes[name](d, **options), dim, spheres)
