"""Training objectives and likelihood estimates for VAEs (and the reconstruction loss of an AE)."""
from __future__ import annotations

import math

import torch

from svae.nn.latent import LatentFamily
from svae.nn.vae import VAE


def elbo_terms(model: VAE, x: torch.Tensor, *, kl_weight: float = 1.0, correction: bool = False) -> dict:
    """A one-sample estimate of the ELBO, per example, and the loss to minimise.

    ``recon`` = E_q[log p(x|z)] (the paper's RE), ``kl`` = KL(q || prior) in closed form,
    ``elbo`` = recon - kl; the loss is -(recon - kl_weight * kl), averaged over the batch.
    With ``correction`` and a rejection-sampled posterior (vMF), the gradient of the
    reconstruction term also gets Naesseth et al.'s correction (unbiased, g_rep + g_cor);
    the loss value is unchanged. For an auto-encoder only ``recon`` and ``loss`` are given.
    """
    if not model.is_variational:
        recon = model.decoder(model.encoder(x)).log_prob(x)
        return {"loss": -recon.mean(), "recon": recon}
    q = model.posterior(x)
    z = q.rsample()
    recon = model.decoder(z).log_prob(x)
    kl = model.latent.kl(q)
    objective = (rejection_corrected(model.latent, q, z, recon) if correction else recon) - kl_weight * kl
    return {"loss": -objective.mean(), "recon": recon, "kl": kl, "elbo": recon - kl}


def rejection_corrected(latent: LatentFamily, q, z: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``f(z)``, one value per code ``z ~ q``, with its gradient made unbiased for a rejection-sampled
    posterior: the value is unchanged and the gradient gains Naesseth et al.'s correction
    ``f(z) * grad log(g/r)``, through ``f + f.detach() * (w - w.detach())`` with ``w`` the log
    weight of the accepted proposal behind ``z``. Families without rejection give ``f`` back."""
    weight = latent.rejection_log_weight(q, z)
    return f if weight is None else f + f.detach() * (weight - weight.detach())


@torch.no_grad()
def importance_log_likelihood(model: VAE, x: torch.Tensor, n_samples: int = 500, chunk: int = 100) -> torch.Tensor:
    """log p(x) estimated by importance sampling with the posterior as proposal (the IWAE bound):
    log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x). Samples are drawn ``chunk`` at a time
    (memory O(chunk x batch x data)); the log-sum-exp is accumulated in float64. One value per example.
    """
    if n_samples < 1 or chunk < 1:
        raise ValueError(f"n_samples and chunk must be >= 1, got {n_samples} and {chunk}")
    q = model.posterior(x)
    log_weights = []
    for start in range(0, n_samples, chunk):
        z = q.sample((min(chunk, n_samples - start),))
        log_w = model.decoder(z).log_prob(x) + model.latent.prior_log_prob(z) - q.log_prob(z)
        log_weights.append(log_w.double())
    return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(n_samples)
