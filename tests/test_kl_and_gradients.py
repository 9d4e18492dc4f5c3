"""KL divergences, densities and gradients against mpmath closed forms and Monte Carlo.

Monte Carlo checks are seeded and allow 5 standard errors.
"""
import math

import mpmath as mp
import pytest
import torch
from scipy import stats
from torch.distributions import kl_divergence

from svae import HypersphericalUniform, PowerSpherical, VonMisesFisher
from svae.distributions.hyperspherical_uniform import log_sphere_area
from svae.nn.latent import NormalLatent, VonMisesFisherLatent
from svae.nn.objectives import rejection_corrected

mp.mp.dps = 40
F64 = torch.float64


def besseli(v, x):
    return mp.besseli(v, x, maxterms=10**7)


def mp_mean_length(m, kappa):
    k = mp.mpf(kappa)
    return besseli(mp.mpf(m) / 2, k) / besseli(mp.mpf(m) / 2 - 1, k)


def mp_kl_uniform(m, kappa):
    """kappa A + log C_m(kappa) + log |S^{m-1}| at 40 digits."""
    k, v = mp.mpf(kappa), mp.mpf(m) / 2 - 1
    log_c = v * mp.log(k) - (mp.mpf(m) / 2) * mp.log(2 * mp.pi) - mp.log(besseli(v, k))
    log_area = mp.log(2) + (mp.mpf(m) / 2) * mp.log(mp.pi) - mp.loggamma(mp.mpf(m) / 2)
    return k * mp_mean_length(m, kappa) + log_c + log_area


def mp_kappa_a_prime(m, kappa):
    a = mp_mean_length(m, kappa)
    k = mp.mpf(kappa)
    return k * (1 - a**2 - (m - 1) * a / k)


def e1(m, device, dtype=F64):
    loc = torch.zeros(m, dtype=dtype, device=device)
    loc[0] = 1
    return loc


def mc_mean(values):
    values = values.double()
    return float(values.mean()), float(values.std() / math.sqrt(values.numel()))


# --- vMF || uniform: value and kappa-gradient against mpmath ---------------------------------------

KL_GRID = [(m, k) for m in [2, 3, 5, 10, 100, 1000, 4096] for k in [1e-6, 0.1, 1.0, 10.0, 100.0, 1e4, 1e6]]


# With `backend` and `device`: off the CPU both backends run the torch code (the loops take CPU tensors).
@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_kl_vmf_uniform_against_mpmath(dtype, backend, device):
    eps = torch.finfo(dtype).eps
    for m, kappa in KL_GRID:
        kap = torch.tensor(kappa, dtype=dtype, device=device, requires_grad=True)
        kl = kl_divergence(VonMisesFisher(e1(m, device, dtype), kap),
                           HypersphericalUniform(m, dtype=dtype, device=device))
        (grad,) = torch.autograd.grad(kl, kap)
        ref, ref_grad = float(mp_kl_uniform(m, kappa)), float(mp_kappa_a_prime(m, kappa))
        # Terms of size |lgamma(m/2)| + 1 cancel when the KL is small (kappa -> 0): absolute
        # rounding error of a few eps times that size.
        scale = abs(math.lgamma(m / 2)) + math.log(kappa + 1) + 1
        assert abs(kl.detach().item() - ref) <= 1e-12 * abs(ref) + 16 * eps * scale, (m, kappa, kl.detach().item(), ref)
        # kappa A' is a difference of two terms of size m - 1 whose result is (m-1)/(2 kappa):
        # relative rounding error of about eps * (1 + 2 kappa).
        tol = 1e-10 * abs(ref_grad) + 16 * eps * (m + 2 * kappa * abs(ref_grad))
        assert abs(float(grad) - ref_grad) <= tol, (m, kappa, float(grad), ref_grad)


def test_kl_vmf_uniform_is_zero_at_kappa_zero_with_zero_gradient(device):
    for m in [2, 3, 10, 4096]:
        kap = torch.tensor(0.0, dtype=F64, device=device, requires_grad=True)
        kl = kl_divergence(VonMisesFisher(e1(m, device), kap), HypersphericalUniform(m, dtype=F64, device=device))
        (grad,) = torch.autograd.grad(kl, kap)
        # exact up to rounding of the cancelling terms of size lgamma(m/2)
        assert abs(float(kl.detach())) < 16 * torch.finfo(F64).eps * (abs(math.lgamma(m / 2)) + 1)
        assert float(grad) == 0


# --- densities and KLs against Monte Carlo --------------------------------------------------------


@pytest.mark.parametrize("family", [VonMisesFisher, PowerSpherical])
@pytest.mark.parametrize("m, kappa", [(2, 1.5), (3, 4.0), (5, 2.0), (10, 0.5)])
def test_density_integrates_to_one(family, m, kappa, device):
    # E_uniform[p(z)] |S^{m-1}| = 1, estimated with uniform samples.
    torch.manual_seed(0)
    q = family(torch.nn.functional.normalize(torch.randn(m, dtype=F64, device=device), dim=0),
               torch.tensor(kappa, dtype=F64, device=device))
    z = HypersphericalUniform(m, dtype=F64, device=device).sample((400000,))
    mean, se = mc_mean(torch.exp(q.log_prob(z) + log_sphere_area(m)))
    assert abs(mean - 1) < 5 * se


@pytest.mark.parametrize("family", [VonMisesFisher, PowerSpherical])
@pytest.mark.parametrize("m, kappa", [(2, 3.0), (3, 0.3), (7, 15.0), (64, 100.0), (500, 2e4)])
def test_entropy_and_kl_uniform_against_monte_carlo(family, m, kappa, device):
    torch.manual_seed(1)
    q = family(torch.nn.functional.normalize(torch.randn(m, dtype=F64, device=device), dim=0),
               torch.tensor(kappa, dtype=F64, device=device))
    log_q = q.log_prob(q.sample((100000,)))
    mean, se = mc_mean(-log_q)
    assert abs(mean - float(q.entropy())) < 5 * se
    mean, se = mc_mean(log_q + log_sphere_area(m))
    assert abs(mean - float(kl_divergence(q, HypersphericalUniform(m, dtype=F64, device=device)))) < 5 * se


@pytest.mark.parametrize("m, k1, k2", [(2, 2.0, 5.0), (3, 10.0, 1.0), (6, 0.0, 3.0), (50, 80.0, 20.0)])
def test_kl_vmf_vmf_against_monte_carlo(m, k1, k2, device):
    torch.manual_seed(2)
    p = VonMisesFisher(torch.nn.functional.normalize(torch.randn(m, dtype=F64, device=device), dim=0),
                       torch.tensor(k1, dtype=F64, device=device))
    q = VonMisesFisher(torch.nn.functional.normalize(torch.randn(m, dtype=F64, device=device), dim=0),
                       torch.tensor(k2, dtype=F64, device=device))
    z = p.sample((200000,))
    mean, se = mc_mean(p.log_prob(z) - q.log_prob(z))
    assert abs(mean - float(kl_divergence(p, q))) < 5 * se
    assert abs(float(kl_divergence(p, p))) < 1e-10


def test_kl_vmf_vmf_against_mpmath(device):
    m, k1, k2, cos = 5, 3.0, 7.0, 0.3
    loc_p = torch.tensor([1.0, 0, 0, 0, 0], dtype=F64, device=device)
    loc_q = torch.tensor([cos, math.sqrt(1 - cos**2), 0, 0, 0], dtype=F64, device=device)
    kl = kl_divergence(VonMisesFisher(loc_p, k1), VonMisesFisher(loc_q, k2))

    def log_c(k):
        v = mp.mpf(m) / 2 - 1
        return v * mp.log(k) - (mp.mpf(m) / 2) * mp.log(2 * mp.pi) - mp.log(besseli(v, k))

    a = mp_mean_length(m, k1)
    ref = log_c(mp.mpf(k1)) + k1 * a - log_c(mp.mpf(k2)) - k2 * a * mp.mpf(cos)
    assert abs(float(kl) - float(ref)) < 1e-12 * abs(float(ref))


@pytest.mark.parametrize("m, kappa", [(2, 1.0), (5, 2.0), (20, 50.0), (300, 1e3)])
def test_vmf_mean_and_variance_against_monte_carlo(m, kappa, device):
    torch.manual_seed(3)
    q = VonMisesFisher(torch.nn.functional.normalize(torch.randn(m, dtype=F64, device=device), dim=0),
                       torch.tensor(kappa, dtype=F64, device=device))
    z = q.sample((100000,))
    assert torch.allclose(q.mean.norm().cpu(), torch.tensor(float(mp_mean_length(m, kappa)), dtype=F64), rtol=1e-12)
    se = z.std(0) / math.sqrt(len(z))
    assert ((z.mean(0) - q.mean).abs() < 5 * se + 1e-12).all()
    var = z.var(0)
    se_var = ((z - z.mean(0)).pow(2).std(0)) / math.sqrt(len(z))
    assert ((var - q.variance).abs() < 5 * se_var + 1e-12).all()


# --- Power Spherical sampler ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("m, kappa", [(2, 0.0), (3, 1.0), (10, 30.0), (256, 1e4), (1000, 1e6)])
def test_power_spherical_cosine_law(m, kappa, dtype, device):
    # (1 + w)/2 ~ Beta((m-1)/2 + kappa, (m-1)/2): one-sample KS on 1 - t for precision near t = 1.
    torch.manual_seed(4)
    loc = torch.nn.functional.normalize(torch.randn(m, dtype=F64, device=device), dim=0).to(dtype)
    z = PowerSpherical(loc, torch.tensor(kappa, dtype=dtype, device=device)).sample((20000,))
    one_minus_t = 0.25 * (z.double() - loc.double()).square().sum(-1).cpu().numpy()
    a, b = (m - 1) / 2 + kappa, (m - 1) / 2
    assert stats.kstest(one_minus_t, stats.beta(b, a).cdf).pvalue > 1e-4
    q = PowerSpherical(torch.nn.functional.normalize(loc.double(), dim=0),
                       torch.tensor(kappa, dtype=F64, device=device))
    assert abs(float(q.mean.norm()) - kappa / (kappa + m - 1)) < 1e-12


def test_power_spherical_gradient_is_exact(device):
    # d/dkappa E[mu^T z] = (m-1) / (kappa + m - 1)^2, estimated by the pathwise gradient alone.
    torch.manual_seed(5)
    m, kappa, n = 6, 3.0, 200000
    kap = torch.full((n,), kappa, dtype=F64, device=device, requires_grad=True)
    q = PowerSpherical(e1(m, device), kap)
    (grad,) = torch.autograd.grad((q.rsample() @ e1(m, device)).sum(), kap)
    mean, se = mc_mean(grad)
    assert abs(mean - (m - 1) / (kappa + m - 1) ** 2) < 5 * se


# --- the rejection-gradient correction -------------------------------------------------------------


def per_sample_gradients(m, kappa, n, seed, device):
    """Per-sample pathwise and corrected estimates of d/dkappa E[mu^T z]; the corrected one is
    the training objectives' (``rejection_corrected``), whose value must be f itself."""
    torch.manual_seed(seed)
    kap = torch.full((n,), kappa, dtype=F64, device=device, requires_grad=True)
    q = VonMisesFisher(e1(m, device), kap)
    z = q.rsample()
    f = z @ e1(m, device)
    corrected = rejection_corrected(VonMisesFisherLatent(m - 1), q, z, f)
    assert torch.equal(corrected, f)
    (g_rep,) = torch.autograd.grad(f.sum(), kap, retain_graph=True)
    (g_total,) = torch.autograd.grad(corrected.sum(), kap)
    return g_rep, g_total


def test_corrected_gradient_matches_the_paper_value(device):
    # d/dkappa E[mu^T z] at m = 5, kappa = 2 is 0.147389; the pathwise term alone gives ~0.128.
    g_rep, g_total = per_sample_gradients(5, 2.0, 1_000_000, seed=11, device=device)
    exact = float(mp.diff(lambda k: mp_mean_length(5, k), 2.0))
    assert abs(exact - 0.147389) < 1e-6
    mean, se = mc_mean(g_total)
    assert 5 * se < 0.005 * exact  # the test has the power to tell a 1 % error
    assert abs(mean - exact) < 0.01 * exact
    rep_mean, rep_se = mc_mean(g_rep)
    assert abs(rep_mean - 0.1277) < 5 * rep_se + 1e-3
    assert exact - rep_mean > 10 * rep_se  # the pathwise term alone is biased


@pytest.mark.parametrize("m, kappa", [(2, 1.0), (10, 5.0), (40, 100.0)])
def test_corrected_gradient_against_closed_form(m, kappa, device):
    _, g_total = per_sample_gradients(m, kappa, 500_000, seed=m, device=device)
    exact = float(mp.diff(lambda k: mp_mean_length(m, k), kappa))
    mean, se = mc_mean(g_total)
    assert abs(mean - exact) < 5 * se


def test_reparameterised_families_get_no_correction(device):
    latent = NormalLatent(3)
    q = latent.posterior(torch.randn(4, latent.num_params, device=device))
    z = q.rsample()
    f = z.sum(-1)
    assert rejection_corrected(latent, q, z, f) is f


def test_inverse_cdf_sampler_needs_no_correction(device):
    g_rep, g_total = per_sample_gradients(3, 2.0, 500_000, seed=13, device=device)
    assert torch.equal(g_rep, g_total)
    exact = float(mp.diff(lambda k: mp_mean_length(3, k), 2.0))
    mean, se = mc_mean(g_rep)
    assert abs(mean - exact) < 5 * se


@pytest.mark.parametrize("m, kappa", [(2, 0.7), (5, 2.0), (30, 12.0)])
def test_rejection_log_weight_is_target_over_proposal_density(m, kappa, device):
    # log g(w) - log r(w): g the vMF density of w = mu^T z, r the density of w = h(eps) with
    # eps ~ Beta((m-1)/2, (m-1)/2), computed independently with mpmath and scipy.
    torch.manual_seed(6)
    q = VonMisesFisher(e1(m, device), torch.tensor(kappa, dtype=F64, device=device))
    z = q.sample((5,))
    got = q.rejection_log_weight(z)
    k = mp.mpf(kappa)
    b = (m - 1) / (2 * kappa + math.sqrt(4 * kappa**2 + (m - 1) ** 2))
    log_norm = (m / 2 - 1) * mp.log(k) - (m / 2) * mp.log(2 * mp.pi) - mp.log(besseli(m / 2 - 1, k))
    for w, value in zip((z @ e1(m, device)).tolist(), got.tolist()):
        log_g = log_norm + kappa * w + (m - 3) / 2 * math.log(1 - w * w) + log_sphere_area(m - 1)
        eps = (1 - w) / ((1 + b) - (1 - b) * w)
        log_r = stats.beta((m - 1) / 2, (m - 1) / 2).logpdf(eps) + math.log(2 * b) - 2 * math.log((1 + b) - (1 - b) * w)
        assert abs(value - (float(log_g) - log_r)) < 1e-8
    zero = VonMisesFisher(e1(m, device), torch.tensor(0.0, dtype=F64, device=device))
    assert zero.rejection_log_weight(zero.sample((4,))).abs().max() < 1e-12


# --- no NaN or inf anywhere -------------------------------------------------------------------------

ENVELOPE_KAPPAS = [0.0, 1e-6, 1e-2, 1.0, 10.0, 1e3, 1e5, 1e6]


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("m", [2, 3, 4, 5, 16, 64, 256, 1024, 4096])
def test_envelope_is_finite(m, dtype, sign, device):
    torch.manual_seed(m)
    raw = (sign * e1(m, device, dtype)).expand(len(ENVELOPE_KAPPAS), m).clone().requires_grad_()
    kappa = torch.tensor(ENVELOPE_KAPPAS, dtype=dtype, device=device, requires_grad=True)
    prior = HypersphericalUniform(m, dtype=dtype, device=device)
    other = VonMisesFisher(torch.roll(raw.detach(), 1, -1), kappa.detach().flip(0))
    for family in (VonMisesFisher, PowerSpherical):
        q = family(torch.nn.functional.normalize(raw, dim=-1), kappa, validate_args=True)
        z = q.rsample((8,))
        f = z.sum(-1)
        terms = [f, q.log_prob(z), q.entropy(), kl_divergence(q, prior), q.mean, q.variance]
        if family is VonMisesFisher:
            terms += [kl_divergence(q, other), kl_divergence(other, q), f.detach() * q.rejection_log_weight(z.detach())]
        for t in terms:
            assert torch.isfinite(t).all(), (family.__name__, t)
        grads = torch.autograd.grad(sum(t.sum() for t in terms), (raw, kappa))
        for g in grads:
            assert torch.isfinite(g).all(), family.__name__
