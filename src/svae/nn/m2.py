r"""Kingma et al. (2014)'s M2: a semi-supervised VAE with a class variable y and a latent z2.

Generative model: p(y) uniform over C classes, p(z2) the latent family's prior,
p(x | y, z2) for the data x (here: M1's codes z1). Inference: q(y | x) (the classifier) and
q(z2 | x, y). Bounds, per example:

* labelled:   L(x, y) = E_q(z2|x,y)[log p(x|y,z2)] + log p(y) - KL(q(z2|x,y) || p(z2))
* unlabelled: U(x) = sum_y q(y|x) L(x, y) + H(q(y|x))

The data likelihood follows the geometry of x: a Gaussian for codes in R^D (an N-VAE's M1), a
von Mises-Fisher for codes on the sphere (an S-VAE's M1).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, Normal

from svae.distributions import VonMisesFisher
from svae.nn.latent import LatentFamily
from svae.nn.objectives import rejection_corrected
from svae.nn.vae import mlp

DATA_FAMILIES = ("normal", "vmf")


class M2(nn.Module):
    """M2 on ``data_dim``-dimensional inputs with ``num_classes`` classes and latent z2 from ``latent``.

    Args:
        data: ``normal`` (Gaussian p(x|y,z2) with a per-dimension scale) or ``vmf`` (x on the sphere).
        hidden: hidden layer sizes of the classifier, the encoder and the decoder.
    """

    is_variational = True

    def __init__(self, data_dim: int, num_classes: int, latent: LatentFamily, data: str = "normal",
                 hidden: tuple[int, ...] = (500,)):
        super().__init__()
        if data not in DATA_FAMILIES:
            raise ValueError(f"data must be one of {list(DATA_FAMILIES)}, got {data!r}")
        self.data, self.num_classes, self.latent = data, num_classes, latent
        data_params = 2 * data_dim if data == "normal" else data_dim + 1
        self.classifier = mlp([data_dim, *hidden, num_classes])
        self.encoder = mlp([data_dim + num_classes, *hidden, latent.num_params])
        self.decoder = mlp([latent.code_dim + num_classes, *hidden, data_params])

    def likelihood(self, z2: torch.Tensor, y: torch.Tensor):
        """p(x | y, z2) for one-hot ``y``."""
        params = self.decoder(torch.cat([z2, y], dim=-1))
        if self.data == "normal":
            loc, scale = params.chunk(2, dim=-1)
            return Independent(Normal(loc, F.softplus(scale) + 1e-4, validate_args=False), 1, validate_args=False)
        return VonMisesFisher(F.normalize(params[..., :-1], dim=-1), F.softplus(params[..., -1]) + 1,
                              validate_args=False)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of q(y | x)."""
        return self.classifier(x)

    def posterior(self, x: torch.Tensor, y: torch.Tensor):
        """q(z2 | x, y) for one-hot ``y``."""
        return self.latent.posterior(self.encoder(torch.cat([x, y], dim=-1)))

    def labelled_bound(self, x: torch.Tensor, y: torch.Tensor, *, kl_weight: float = 1.0,
                       correction: bool = False) -> dict:
        """L(x, y) for one-hot ``y``: per-example ``elbo``, ``recon`` and ``kl``, and the ``objective``
        to maximise (the KL weighted, the rejection correction added if asked for)."""
        q = self.posterior(x, y)
        z2 = q.rsample()
        recon = self.likelihood(z2, y).log_prob(x)
        kl = self.latent.kl(q) + math.log(self.num_classes)  # KL to p(z2) minus log p(y)
        objective = (rejection_corrected(self.latent, q, z2, recon) if correction else recon) - kl_weight * kl
        return {"elbo": recon - kl, "recon": recon, "kl": kl, "objective": objective}

    def every_class_bound(self, x: torch.Tensor, **options) -> dict:
        """L(x, y) for every class y at once (the batch repeated C times): each term shaped (n, C)."""
        n, c = len(x), self.num_classes
        ys = torch.eye(c, dtype=x.dtype, device=x.device).repeat_interleave(n, dim=0)  # class-major
        return {k: v.view(c, n).T for k, v in self.labelled_bound(x.repeat(c, 1), ys, **options).items()}

    def unlabelled_bound(self, x: torch.Tensor, **options) -> dict:
        """U(x): the labelled bound of every class, averaged under q(y|x), plus the entropy of
        q(y|x). Also returns the classifier's log-probabilities."""
        log_probs = F.log_softmax(self.classify(x), dim=-1)
        probs = log_probs.exp()
        entropy = -(probs * log_probs).sum(-1)
        out = {k: (probs * v).sum(-1) for k, v in self.every_class_bound(x, **options).items()}
        out["elbo"] = out["elbo"] + entropy
        out["objective"] = out["objective"] + entropy
        out["kl"] = out["recon"] - out["elbo"]  # so that elbo = recon - kl holds for U too
        out["log_probs"] = log_probs
        return out
