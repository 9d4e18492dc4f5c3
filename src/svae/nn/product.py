r"""Product-of-spheres latents (Davidson et al., "Increasing Expressivity of a Hyperspherical VAE",
2019): ``d`` degrees of freedom split over ``k`` spheres, each with its own mean direction and
concentration, so that one concentration no longer has to serve every direction of the code.

Sphere ``i`` gets :math:`d_i = \lfloor d/k \rfloor` degrees of freedom, the first ``d mod k``
spheres one more (``d = 10, k = 3``: :math:`S^4 \times S^3 \times S^3` in
:math:`\mathbb{R}^{5+4+4}`); codes are the spheres' unit vectors concatenated, ``d + k``
numbers. The prior is the product of the uniform distributions, the KL the sum of the spheres'
KLs, and :math:`\log q(z)` the sum of theirs.
"""
from __future__ import annotations

import torch
from torch.distributions import Distribution, constraints

from svae.nn.latent import LatentFamily


def sphere_dims(dim: int, spheres: int) -> list[int]:
    """Degrees of freedom per sphere: ``dim // spheres`` each, the first ``dim % spheres`` one more."""
    if isinstance(spheres, bool) or not isinstance(spheres, int) or not 1 <= spheres <= dim:
        raise ValueError(f"spheres must be an int in [1, dim = {dim}] (each sphere has >= 1 degree of freedom), "
                         f"got {spheres!r}")
    base, extra = divmod(dim, spheres)
    return [base + (i < extra) for i in range(spheres)]


class ProductPosterior(Distribution):
    """Independent posteriors over consecutive blocks of the code, one per sphere."""

    arg_constraints = {}
    support = constraints.real_vector  # each block is on its sphere; the blocks' own supports say so
    has_rsample = True

    def __init__(self, factors: list[Distribution]):
        self.factors = factors
        self.block_sizes = [q.event_shape[-1] for q in factors]
        super().__init__(factors[0].batch_shape, torch.Size([sum(self.block_sizes)]), validate_args=False)

    def _blocks(self, value: torch.Tensor):
        return value.split(self.block_sizes, dim=-1)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return torch.cat([q.rsample(sample_shape) for q in self.factors], dim=-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return sum(q.log_prob(block) for q, block in zip(self.factors, self._blocks(value)))

    def entropy(self) -> torch.Tensor:
        return sum(q.entropy() for q in self.factors)

    @property
    def mean(self) -> torch.Tensor:
        return torch.cat([q.mean for q in self.factors], dim=-1)

    @property
    def mode(self) -> torch.Tensor:
        return torch.cat([q.mode for q in self.factors], dim=-1)


class ProductOfSpheres(LatentFamily):
    """``spheres`` independent spherical factors of the family ``factor(d_i)`` (see the module)."""

    def __init__(self, factor, dim: int, spheres: int):
        super().__init__(dim)
        self.factors = [factor(d) for d in sphere_dims(dim, spheres)]
        self.name = self.factors[0].name
        self.num_params = sum(f.num_params for f in self.factors)
        self.code_dim = sum(f.code_dim for f in self.factors)
        self._param_sizes = [f.num_params for f in self.factors]
        self._code_sizes = [f.code_dim for f in self.factors]

    def posterior(self, raw: torch.Tensor) -> ProductPosterior:
        chunks = raw.split(self._param_sizes, dim=-1)
        return ProductPosterior([f.posterior(c) for f, c in zip(self.factors, chunks)])

    def kl(self, q: ProductPosterior) -> torch.Tensor:
        return sum(f.kl(qi) for f, qi in zip(self.factors, q.factors))

    def point(self, q: ProductPosterior) -> torch.Tensor:
        return torch.cat([f.point(qi) for f, qi in zip(self.factors, q.factors)], dim=-1)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return sum(f.prior_log_prob(block) for f, block in zip(self.factors, z.split(self._code_sizes, dim=-1)))

    def rejection_log_weight(self, q: ProductPosterior, z: torch.Tensor) -> torch.Tensor | None:
        """The sum of the spheres' log weights: the spheres' samplers are independent, so the
        weight of the joint proposal is their product."""
        weights = [f.rejection_log_weight(qi, block)
                   for f, qi, block in zip(self.factors, q.factors, z.split(self._code_sizes, dim=-1))]
        weights = [w for w in weights if w is not None]
        return sum(weights) if weights else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, dim={self.dim}, spheres={len(self.factors)})"
