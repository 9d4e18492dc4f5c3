"""Every KL divergence between svae's distributions, registered with torch.distributions."""
import math

import torch
from torch.distributions import register_kl

from svae.distributions.hyperspherical_uniform import HypersphericalUniform, log_sphere_area
from svae.distributions.power_spherical import PowerSpherical
from svae.distributions.von_mises_fisher import VonMisesFisher


def _check_same_sphere(p, q):
    if p.dim != q.dim:
        raise ValueError(
            f"KL divergence between distributions on different spheres: "
            f"{type(p).__name__} has dim {p.dim}, {type(q).__name__} has dim {q.dim}"
        )


def _broadcast(kl, p, q):
    # The prior is usually unbatched; torch.broadcast_shapes costs more than the KL's arithmetic.
    shape = torch.broadcast_shapes(p.batch_shape, q.batch_shape) if q.batch_shape else p.batch_shape
    return kl.expand(shape)


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p, q):
    r"""kappa A + log C_m(kappa) + log |S^{m-1}|, as -kappa (1 - A) - log(I_v e^-k k^-v) + const.

    Independent of the mean direction; exact at kappa = 0 (where it is 0) and free of cancellation
    at large kappa, where 1 - A is computed directly. Its kappa-derivative is kappa A'(kappa).
    """
    _check_same_sphere(p, q)
    log_over_power, _, complement = p._bessel_terms()
    m = p.dim
    kl = -p.concentration * complement - log_over_power - 0.5 * m * math.log(2 * math.pi) + log_sphere_area(m)
    return _broadcast(kl, p, q)


@register_kl(VonMisesFisher, VonMisesFisher)
def _kl_vmf_vmf(p, q):
    r"""E_p[log p - log q] = -k_p (1 - A_p) - log_over_power(k_p) + log_over_power(k_q)
    + k_q (1 - A_p + A_p |mu_p - mu_q|^2 / 2)."""
    _check_same_sphere(p, q)
    log_p, mean_length, complement = p._bessel_terms()
    log_q = q._bessel_terms()[0]
    one_minus_cos = 0.5 * (p.loc - q.loc).square().sum(-1)
    kl = (
        -p.concentration * complement - log_p + log_q
        + q.concentration * (complement + mean_length * one_minus_cos)
    )
    return _broadcast(kl, p, q)


@register_kl(PowerSpherical, HypersphericalUniform)
def _kl_power_spherical_uniform(p, q):
    _check_same_sphere(p, q)
    return _broadcast(log_sphere_area(p.dim) - p.entropy(), p, q)
