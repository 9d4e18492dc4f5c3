"""Goodness of fit of the vMF sampler: the law of w = mu^T z and of the tangent direction.

Statistical tests are seeded; a test fails when a p-value is below 1e-4 or a mean is further
than 5 standard errors from its exact value (a chance failure has probability < 1e-4 per check).
"""
import functools
import math

import mpmath as mp
import numpy as np
import pytest
import torch
from scipy import stats

from svae import PowerSpherical, VonMisesFisher

DIMS = [2, 3, 4, 5, 10, 64, 256, 1000]
KAPPAS = [0.0, 0.1, 1.0, 10.0, 100.0, 1e3, 1e5]
DTYPES = [torch.float64, torch.float32]
P_MIN = 1e-4


def n_samples(m):
    return 20000 if m <= 64 else 4000


def mean_length(m, kappa):
    """A_m(kappa) and A_m'(kappa) with mpmath at 40 digits."""
    mp.mp.dps = 40
    if kappa == 0:
        return 0.0, 1.0 / m
    k = mp.mpf(kappa)
    a = mp.besseli(m / 2, k, maxterms=10**7) / mp.besseli(m / 2 - 1, k, maxterms=10**7)
    return float(a), float(1 - a**2 - (m - 1) * a / k)


@functools.lru_cache(maxsize=None)
def scipy_one_minus_w(m, kappa):
    """1 - mu^T z for samples of scipy.stats.vonmises_fisher (the independent reference)."""
    mu = np.zeros(m)
    mu[0] = 1.0
    z = stats.vonmises_fisher(mu, kappa).rvs(n_samples(m), random_state=1234)
    return 0.5 * ((z - mu) ** 2).sum(-1)


def unit(m, dtype, device, sign=1.0):
    loc = torch.zeros(m, dtype=dtype, device=device)
    loc[0] = sign
    return loc


def one_minus_w(z, loc):
    """1 - mu^T z in float64 as |z - mu|^2/2, so it keeps its precision when z is close to mu."""
    return 0.5 * (z.double() - loc.double()).square().sum(-1).cpu().numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kappa", KAPPAS)
@pytest.mark.parametrize("m", DIMS)
def test_cosine_law_and_mean(m, kappa, dtype, device):
    torch.manual_seed(m * 1000 + int(math.log10(kappa + 1e-9) * 7) + (dtype == torch.float32))
    # A random mean direction, also checking that the Householder map does not favour e_1.
    loc = torch.nn.functional.normalize(torch.randn(m, dtype=torch.float64, device=device), dim=0).to(dtype)
    z = VonMisesFisher(loc, torch.tensor(kappa, dtype=dtype, device=device)).sample((n_samples(m),))
    assert z.dtype == dtype and torch.isfinite(z).all()
    norm_err = (torch.linalg.vector_norm(z.double(), dim=-1) - 1).abs().max()
    assert norm_err < 50 * torch.finfo(dtype).eps * math.sqrt(m)
    y = one_minus_w(z, loc)

    if kappa == 0:  # uniform: (1 + w)/2 ~ Beta((m-1)/2, (m-1)/2) exactly
        a = (m - 1) / 2
        p = stats.kstest(1 - y / 2, stats.beta(a, a).cdf).pvalue
    elif m == 3:  # P(1 - w <= t) = (1 - e^{-k t}) / (1 - e^{-2k})
        p = stats.kstest(y, lambda t: -np.expm1(-kappa * t) / -np.expm1(-2 * kappa)).pvalue
    else:
        p = stats.ks_2samp(y, scipy_one_minus_w(m, kappa)).pvalue
    assert p > P_MIN, f"KS p-value {p:.2e}"

    a, a_prime = mean_length(m, kappa)
    se = math.sqrt(a_prime / len(y))
    # float32 rounding of w (about eps) is negligible against 5 standard errors except at the
    # largest kappa, where it is allowed for explicitly.
    tol = 5 * se + 4 * torch.finfo(dtype).eps
    assert abs((1 - y).mean() - a) <= tol


@pytest.mark.parametrize("m", [3, 5, 64])
@pytest.mark.parametrize("kappa", [0.5, 20.0])
def test_tangent_direction_is_uniform(m, kappa, device):
    # Given w, the direction of z - w mu is uniform on the sphere orthogonal to mu: its first
    # coordinate in an orthonormal basis of that subspace has law (1 + c)/2 ~ Beta((m-2)/2, (m-2)/2).
    torch.manual_seed(7)
    loc = torch.nn.functional.normalize(torch.randn(m, dtype=torch.float64, device=device), dim=0)
    z = VonMisesFisher(loc, torch.tensor(kappa, dtype=torch.float64, device=device)).sample((20000,))
    noise = torch.randn(m, m - 1, dtype=torch.float64, device=device)
    basis = torch.linalg.qr(torch.cat([loc[:, None], noise], 1))[0][:, 1:]
    tangent = torch.nn.functional.normalize(z @ basis, dim=-1).cpu()
    c = tangent[:, 0].numpy()
    a = (m - 2) / 2
    if m == 3:  # uniform on the circle: c = cos(theta)
        p = stats.kstest(np.arccos(np.clip(c, -1, 1)) * np.sign(tangent[:, 1].numpy()), stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue
    else:
        p = stats.kstest((1 + c) / 2, stats.beta(a, a).cdf).pvalue
    assert p > P_MIN
    assert torch.linalg.vector_norm(tangent.mean(0)) < 5 * math.sqrt(1 / 20000)


@pytest.mark.parametrize("family", [VonMisesFisher, PowerSpherical])
def test_nearby_concentrations_share_the_tangent_directions(family, device):
    # Common random numbers: under one seed, a slightly different concentration changes how many
    # random numbers the cosine consumes (which samples the rejection sampler's first round of two
    # proposals leaves pending, the Gamma draws' own rejections), but not the tangent directions,
    # which are drawn first (drawn after the cosine, as before, they came out different here).
    loc = unit(11, torch.float64, device)
    tangents = []
    for kappa in (2.0, 2.5):
        torch.manual_seed(0)
        z = family(loc, torch.tensor(kappa, dtype=torch.float64, device=device)).rsample((20000,))
        tangents.append(torch.nn.functional.normalize(z[:, 1:], dim=-1))
    assert torch.allclose(tangents[0], tangents[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("m", [2, 3, 10])
def test_poles_are_not_special(m, sign, device):
    # loc = +-e1 are the fixed points of the classic Householder map (u = e1 - mu = 0).
    torch.manual_seed(3)
    loc = unit(m, torch.float64, device, sign)
    z = VonMisesFisher(loc, torch.tensor(5.0, dtype=torch.float64, device=device)).rsample((20000,))
    a, a_prime = mean_length(m, 5.0)
    assert abs(float((z @ loc).mean()) - a) < 5 * math.sqrt(a_prime / 20000)
    assert torch.isfinite(z).all()


def test_batched_parameters_sample_independently(device):
    torch.manual_seed(0)
    kappas = torch.tensor([0.0, 1.0, 50.0, 1e4], dtype=torch.float64, device=device)
    loc = torch.nn.functional.normalize(torch.randn(4, 6, dtype=torch.float64, device=device), dim=-1)
    z = VonMisesFisher(loc, kappas).sample((20000,))
    w = (z * loc).sum(-1)
    for j, k in enumerate(kappas.tolist()):
        a, a_prime = mean_length(6, k)
        assert abs(float(w[:, j].mean()) - a) < 5 * math.sqrt(a_prime / 20000)


def test_sampler_raises_instead_of_returning_garbage():
    # Without validation a NaN concentration reaches the sampler: no proposal is ever accepted.
    # CPU only: the exact loop that raises runs there; elsewhere an unaccepted sample is NaN.
    q = VonMisesFisher(unit(5, torch.float64, "cpu"), torch.tensor([1.0, float("nan")], dtype=torch.float64),
                       validate_args=False)
    with pytest.raises(RuntimeError, match="1 of 2 samples had no accepted proposal after 20 rounds"):
        q.rsample()
