"""Synthetic data with a circular latent structure (the paper's Figure 1), made by the project itself.

Recipe (all of it seeded, nothing downloaded):

1. Angles from an equal-weight mixture of three von Mises distributions on the circle, with means
   0, 2pi/3 and 4pi/3 and concentration 8 each (``torch.distributions.VonMises``); the
   component of each point is kept as its label. The latent point is u = (cos angle, sin angle).
2. A fixed random map into R^100 (drawn from its own seed, ``map_seed``): a 2-layer MLP
   x = W2 tanh(W1 u + b1) + b2 with 64 hidden units, W1 ~ N(0, 2^2), b1 ~ N(0, 1),
   W2 ~ N(0, 1/64), b2 ~ N(0, 1).
3. Gaussian noise of standard deviation 1 added to every coordinate (about as large as the signal
   in each coordinate: the regime where the prior matters, as in the paper's figure).

Train, validation and test points are disjoint draws from one generator (``seed``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MEANS = (0.0, 2 * math.pi / 3, 4 * math.pi / 3)
CONCENTRATION = 8.0
DATA_DIM, HIDDEN, NOISE = 100, 64, 1.0


@dataclass(frozen=True)
class CircleData:
    x: torch.Tensor  # (n, 100) observations
    angle: torch.Tensor  # (n,) true latent angle in [-pi, pi)
    component: torch.Tensor  # (n,) mixture component, 0..2

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index) -> "CircleData":
        return CircleData(self.x[index], self.angle[index], self.component[index])

    @property
    def latent(self) -> torch.Tensor:
        """The true latent points on the circle, (n, 2)."""
        return torch.stack([self.angle.cos(), self.angle.sin()], dim=-1)


def circle_map(map_seed: int = 0):
    """The fixed non-linear map R^2 -> R^100 (without noise)."""
    g = torch.Generator().manual_seed(map_seed)
    w1, b1 = 2 * torch.randn(HIDDEN, 2, generator=g), torch.randn(HIDDEN, generator=g)
    w2, b2 = torch.randn(DATA_DIM, HIDDEN, generator=g) / math.sqrt(HIDDEN), torch.randn(DATA_DIM, generator=g)
    return lambda u: torch.tanh(u @ w1.T + b1) @ w2.T + b2


def make_circle_data(n: int, *, seed: int = 0, map_seed: int = 0) -> CircleData:
    """``n`` points of the synthetic data set (see the module's recipe)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    g = torch.Generator().manual_seed(seed)
    component = torch.randint(len(MEANS), (n,), generator=g)
    # VonMises.sample has no generator argument: draw under a forked global RNG state.
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(2**62, (), generator=g)))
        angle = torch.distributions.VonMises(torch.tensor(MEANS)[component], torch.tensor(CONCENTRATION)).sample()
    angle = torch.remainder(angle + math.pi, 2 * math.pi) - math.pi
    u = torch.stack([angle.cos(), angle.sin()], dim=-1)
    x = circle_map(map_seed)(u) + NOISE * torch.randn(n, DATA_DIM, generator=g)
    return CircleData(x, angle, component)


def circle_splits(n_train: int = 4000, n_val: int = 1000, n_test: int = 1000, *, seed: int = 0, map_seed: int = 0):
    """(train, val, test) CircleData, disjoint draws of one seeded generator."""
    data = make_circle_data(n_train + n_val + n_test, seed=seed, map_seed=map_seed)
    return data[:n_train], data[n_train:n_train + n_val], data[n_train + n_val:]
