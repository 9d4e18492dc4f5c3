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
    """Independent posteriors over consecutive blocks of the code, one per sphere.

    Spheres of one size are one distribution with a batch dimension of spheres (``groups``: at
    most two, see :func:`sphere_dims`), so that a product costs two calls, not one per sphere.
    """

    arg_constraints = {}
    support = constraints.real_vector  # each block is on its sphere; the groups' own supports say so
    has_rsample = True

    def __init__(self, groups: list[Distribution]):
        self.groups = groups  # batch shape (..., spheres of the group), event shape (m,)
        self._code_sizes = [q.batch_shape[-1] * q.event_shape[-1] for q in groups]
        super().__init__(groups[0].batch_shape[:-1], torch.Size([sum(self._code_sizes)]), validate_args=False)

    def blocks(self, value: torch.Tensor) -> list[torch.Tensor]:
        """``value`` (..., code) cut into the groups' (..., spheres, m) blocks."""
        return [block.unflatten(-1, (q.batch_shape[-1], q.event_shape[-1]))
                for q, block in zip(self.groups, value.split(self._code_sizes, dim=-1))]

    @staticmethod
    def joined(blocks) -> torch.Tensor:
        """The inverse of :meth:`blocks`: (..., spheres, m) blocks flattened and concatenated."""
        return torch.cat([block.flatten(-2) for block in blocks], dim=-1)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.joined([q.rsample(sample_shape) for q in self.groups])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return sum(q.log_prob(block).sum(-1) for q, block in zip(self.groups, self.blocks(value)))

    def entropy(self) -> torch.Tensor:
        return sum(q.entropy().sum(-1) for q in self.groups)

    @property
    def mean(self) -> torch.Tensor:
        return self.joined([q.mean for q in self.groups])

    @property
    def mode(self) -> torch.Tensor:
        return self.joined([q.mode for q in self.groups])


class ProductOfSpheres(LatentFamily):
    """``spheres`` independent spherical factors of the family ``factor(d_i)`` (see the module)."""

    def __init__(self, factor, dim: int, spheres: int):
        super().__init__(dim)
        sizes = sphere_dims(dim, spheres)
        counts = {size: sizes.count(size) for size in dict.fromkeys(sizes)}  # the larger spheres first
        self.groups = [(factor(size), count) for size, count in counts.items()]
        self.spheres = spheres
        self.name = self.groups[0][0].name
        self.num_params = sum(f.num_params * count for f, count in self.groups)
        self.code_dim = sum(f.code_dim * count for f, count in self.groups)
        self._param_sizes = [f.num_params * count for f, count in self.groups]

    def posterior(self, raw: torch.Tensor) -> ProductPosterior:
        chunks = raw.split(self._param_sizes, dim=-1)
        return ProductPosterior([f.posterior(chunk.unflatten(-1, (count, f.num_params)))
                                 for (f, count), chunk in zip(self.groups, chunks)])

    def kl(self, q: ProductPosterior) -> torch.Tensor:
        return sum(f.kl(group).sum(-1) for (f, _), group in zip(self.groups, q.groups))

    def point(self, q: ProductPosterior) -> torch.Tensor:
        return q.joined([f.point(group) for (f, _), group in zip(self.groups, q.groups)])

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        blocks = z.split([f.code_dim * count for f, count in self.groups], dim=-1)
        return sum(f.prior_log_prob(block.unflatten(-1, (count, f.code_dim))).sum(-1)
                   for (f, count), block in zip(self.groups, blocks))

    def rejection_log_weight(self, q: ProductPosterior, z: torch.Tensor) -> torch.Tensor | None:
        """The sum of the spheres' log weights: the spheres' samplers are independent, so the
        weight of the joint proposal is their product."""
        weights = [f.rejection_log_weight(group, block)
                   for (f, _), group, block in zip(self.groups, q.groups, q.blocks(z))]
        weights = [w.sum(-1) for w in weights if w is not None]
        return sum(weights) if weights else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, dim={self.dim}, spheres={self.spheres})"
