"""Every KL divergence between svae's distributions, registered with torch.distributions."""
import torch
from torch.distributions import register_kl

from svae.distributions.hyperspherical_uniform import HypersphericalUniform
from svae.distributions.power_spherical import PowerSpherical
from svae.distributions.spherical import nonnegative
from svae.distributions.spherical_cauchy import SphericalCauchy
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


@register_kl(HypersphericalUniform, HypersphericalUniform)
def _kl_uniform_uniform(p, q):
    """0: the same distribution (given the same sphere)."""
    _check_same_sphere(p, q)
    return torch.zeros(torch.broadcast_shapes(p.batch_shape, q.batch_shape), dtype=p._dtype, device=p._device)


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p, q):
    r"""kappa A + log C_m(kappa) + log |S^{m-1}|, as [g(0) - g(kappa)] - kappa (1 - A) with
    g = log(I_v e^-k k^-v) (see VonMisesFisher._kl_to_uniform).

    Independent of the mean direction; exactly 0 at kappa = 0 and free of cancellation at large
    kappa, where 1 - A is computed directly. Its kappa-derivative is kappa A'(kappa).
    """
    _check_same_sphere(p, q)
    return _broadcast(p._returned(p._kl_to_uniform()), p, q)


@register_kl(VonMisesFisher, VonMisesFisher)
def _kl_vmf_vmf(p, q):
    r"""E_p[log p - log q] = -k_p (1 - A_p) - log_over_power(k_p) + log_over_power(k_q)
    + k_q (1 - A_p + A_p |mu_p - mu_q|^2 / 2), combined in float64 and rounded once."""
    _check_same_sphere(p, q)
    kappa_p, kappa_q = p._wide_concentration(), q._wide_concentration()
    log_p, mean_length, complement = p._bessel_terms(kappa_p)
    log_q = q._bessel_terms(kappa_q)[0]
    one_minus_cos = 0.5 * (p._computing()[0] - q._computing()[0]).square().sum(-1).to(complement.dtype)
    kl = -kappa_p * complement - log_p + log_q + kappa_q * (complement + mean_length * one_minus_cos)
    return _broadcast(p._returned(nonnegative(kl)), p, q)


@register_kl(PowerSpherical, HypersphericalUniform)
def _kl_power_spherical_uniform(p, q):
    _check_same_sphere(p, q)
    return _broadcast(p._returned(p._kl_to_uniform()), p, q)


@register_kl(PowerSpherical, VonMisesFisher)
def _kl_power_spherical_vmf(p, q):
    r"""E_p[log p - log q] = KL(p || U) - KL(q || U) + k_q (E_p[1 - mu_q^T z] - (1 - A_q)), with
    E_p[z] = k_p / (k_p + m - 1) mu_p, so E_p[1 - mu_q^T z] = (m - 1) / (k_p + m - 1) + k_p / (k_p
    + m - 1) |mu_p - mu_q|^2 / 2: two KLs to the uniform distribution (each without cancellation,
    see their classes) and a difference of two small non-negative terms, combined in float64.

    The reverse, KL(vMF || Power Spherical), needs E_q[log(1 + mu_p^T z)] under a vMF, which has
    no closed form; it is not registered.
    """
    _check_same_sphere(p, q)
    kappa_p, kappa_q = p._wide_concentration(), q._wide_concentration()
    complement_q = q._bessel_terms(kappa_q)[2]
    m = p.dim
    one_minus_cos = 0.5 * (p._computing()[0] - q._computing()[0]).square().sum(-1).to(kappa_p.dtype)
    spread = (kappa_p + (m - 1)).reciprocal()
    expected_gap = (m - 1) * spread + kappa_p * spread * one_minus_cos
    kl = p._kl_to_uniform() - q._kl_to_uniform() + kappa_q * (expected_gap - complement_q)
    return _broadcast(p._returned(nonnegative(kl)), p, q)


@register_kl(SphericalCauchy, HypersphericalUniform)
def _kl_spherical_cauchy_uniform(p, q):
    """d E[log(1 + rho^2 + 2 rho u)] - d log(1 - rho^2) (see svae.distributions.spherical_cauchy_terms)."""
    _check_same_sphere(p, q)
    return _broadcast(p._returned(p._kl_to_uniform()), p, q)
