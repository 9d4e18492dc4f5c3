"""Variational auto-encoders with MLP encoder/decoder and a pluggable latent family.

The paper's MNIST architecture is ``VAE.mlp(784, (256, 128), latent, "bernoulli")``: encoder
784-256-128 with ReLU and a head for the latent family's parameters, decoder mirrored.
``latent=None`` gives a plain (deterministic) auto-encoder with ``code_dim`` outputs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from svae.nn.latent import LatentFamily


def mlp(sizes, activation=nn.ReLU) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class BernoulliDecoder(nn.Module):
    """p(x | z) = Bernoulli(logits = net(z)), independent over the data dimensions."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z):
        return Independent(Bernoulli(logits=self.net(z), validate_args=False), 1, validate_args=False)


class GaussianDecoder(nn.Module):
    """p(x | z) = N(net(z), sigma^2 I) with one learnt sigma shared by all dimensions."""

    def __init__(self, net: nn.Module, init_scale: float = 1.0):
        super().__init__()
        self.net = net
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))

    def forward(self, z):
        loc = self.net(z)
        scale = self.log_scale.exp().expand_as(loc)
        return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)


DECODERS = {"bernoulli": BernoulliDecoder, "gaussian": GaussianDecoder}


class VAE(nn.Module):
    """Encoder -> posterior q(z|x) (a LatentFamily) -> sample -> decoder p(x|z).

    With ``latent=None`` the encoder output is the code itself (an auto-encoder).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent: LatentFamily | None):
        super().__init__()
        self.encoder, self.decoder, self.latent = encoder, decoder, latent

    @classmethod
    def mlp(cls, data_dim: int, hidden: tuple[int, ...], latent: LatentFamily | None, likelihood: str,
            *, code_dim: int | None = None, activation=nn.ReLU) -> "VAE":
        """MLP encoder ``data_dim -> hidden -> params`` and mirrored decoder ``code -> hidden[::-1] -> data_dim``."""
        if likelihood not in DECODERS:
            raise ValueError(f"likelihood must be one of {sorted(DECODERS)}, got {likelihood!r}")
        if latent is None and code_dim is None:
            raise ValueError("an auto-encoder (latent=None) needs code_dim")
        params = latent.num_params if latent is not None else code_dim
        code = latent.code_dim if latent is not None else code_dim
        encoder = mlp([data_dim, *hidden, params], activation)
        decoder = DECODERS[likelihood](mlp([code, *hidden[::-1], data_dim], activation))
        return cls(encoder, decoder, latent)

    @property
    def is_variational(self) -> bool:
        return self.latent is not None

    def posterior(self, x):
        if self.latent is None:
            raise TypeError("an auto-encoder has no posterior")
        return self.latent.posterior(self.encoder(x))

    @torch.no_grad()
    def embed(self, x) -> torch.Tensor:
        """Deterministic codes: posterior means (Gaussian) or modes (spherical), or the AE's code."""
        return self.encoder(x) if self.latent is None else self.latent.point(self.posterior(x))
