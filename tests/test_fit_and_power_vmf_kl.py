"""Maximum-likelihood vMF fits (against scipy and closed forms) and KL(Power Spherical || vMF)
(against mpmath quadrature and Monte Carlo)."""
import math

import mpmath as mp
import pytest
import torch
from scipy.stats import vonmises_fisher
from torch.distributions import kl_divergence

from svae.distributions import PowerSpherical, VonMisesFisher, fit_von_mises_fisher


def _points(m, kappa, n, device, seed=0):
    torch.manual_seed(seed)
    loc = torch.nn.functional.normalize(torch.randn(m, dtype=torch.float64, device=device), dim=0)
    return VonMisesFisher(loc, torch.tensor(kappa, dtype=torch.float64, device=device)).sample((n,))


# --- fit_von_mises_fisher ------------------------------------------------------------------------------


@pytest.mark.parametrize("m, kappa", [(2, 0.5), (3, 20.0), (10, 1.0), (10, 300.0), (64, 5e4), (64, 40.0)])
def test_fit_matches_scipy(device, m, kappa):
    """scipy.stats.vonmises_fisher.fit solves the same equation by root finding: the two agree to
    1e-10 relative in kappa (scipy's 1 - |mean| cancels for tight clusters, hence not 1e-15)."""
    x = _points(m, kappa, 2000, device)
    loc, fitted = fit_von_mises_fisher(x)
    scipy_loc, scipy_kappa = vonmises_fisher.fit(x.cpu().numpy())
    assert abs(fitted.item() - scipy_kappa) <= 1e-10 * scipy_kappa
    torch.testing.assert_close(loc.cpu(), torch.from_numpy(scipy_loc), rtol=0, atol=1e-14)


@pytest.mark.parametrize("m, kappa", [(256, 40.0), (1000, 3000.0), (5, 0.01)])
def test_fit_solves_its_equation_against_mpmath(device, m, kappa):
    """A_m(kappa_hat) = |mean| with A_m from 30-digit mpmath, to 1e-12 relative in 1 - A_m. (At
    m = 256, kappa = 40, scipy's fit returns its lower bound 1e-8: its root finder fails there.)"""
    x = _points(m, kappa, 1000, device)
    loc, fitted = fit_von_mises_fisher(x)
    mp.mp.dps = 30
    k = mp.mpf(fitted.item())
    ratio = mp.besseli(mp.mpf(m) / 2, k) / mp.besseli(mp.mpf(m) / 2 - 1, k)
    gap = (0.5 * (x - loc).square().sum(-1)).mean().item()
    assert abs(float(1 - ratio) / gap - 1) <= 1e-12


@pytest.mark.parametrize("kappa", [50.0, 1e4, 1e9, 1e13])
def test_fit_solves_the_closed_form_equation_at_m_3(device, kappa):
    """At m = 3, 1 - A_3(k) = 1/k - 2/(e^(2k) - 1) = 1/k to float64 rounding for k > 20: the fitted
    kappa is 1 / (1 - R), with 1 - R the mean of |x_i - loc|^2 / 2, to 1e-13, however tight the points."""
    x = _points(3, kappa, 500, device)
    loc, fitted = fit_von_mises_fisher(x)
    gap = (0.5 * (x - loc).square().sum(-1)).mean()
    assert abs(fitted.item() * gap.item() - 1) <= 1e-13


def test_weights_count_points(device):
    x = _points(5, 8.0, 300, device)
    counts = torch.randint(0, 4, (300,), device=device)
    repeated = torch.repeat_interleave(x, counts, dim=0)
    for got, want in zip(fit_von_mises_fisher(x, counts.double()), fit_von_mises_fisher(repeated)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_fit_is_batched_and_keeps_the_dtype(device):
    x = torch.stack([_points(4, k, 400, device, seed=i) for i, k in enumerate([0.3, 5.0, 90.0])]).float()
    loc, kappa = fit_von_mises_fisher(x)
    assert loc.shape == (3, 4) and kappa.shape == (3,) and kappa.dtype == torch.float32
    for i in range(3):
        torch.testing.assert_close(kappa[i], fit_von_mises_fisher(x[i])[1])


def test_degenerate_samples(device):
    same = torch.tensor([[0.0, 1.0, 0.0]] * 4, dtype=torch.float64, device=device)
    loc, kappa = fit_von_mises_fisher(same)
    assert kappa.item() == math.inf and loc.tolist() == [0.0, 1.0, 0.0]
    opposite = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64, device=device)
    assert fit_von_mises_fisher(opposite)[1].item() == 0


def test_fit_names_bad_shapes():
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., n, m\) with m >= 2"):
        fit_von_mises_fisher(torch.ones(5))
    with pytest.raises(ValueError, match="weights must have shape"):
        fit_von_mises_fisher(torch.eye(3), torch.ones(4))
    with pytest.raises(ValueError, match="at least one point"):
        fit_von_mises_fisher(torch.zeros(2, 0, 3))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_fit_refuses_inputs_that_would_give_a_silently_wrong_fit(dtype, monkeypatch):
    """Unnormalised points, NaN, negative or all-zero weights give a plausible-looking answer
    (unnormalised Gaussian points fit as kappa = 0 or as a wrong finite kappa) unless refused."""
    # the default outside `python -O`, whatever a command run earlier in this process set it to
    monkeypatch.setattr(torch.distributions.Distribution, "_validate_args", True)
    x = torch.nn.functional.normalize(torch.randn(2, 50, 4, dtype=torch.float64), dim=-1).to(dtype)
    fit_von_mises_fisher(x, torch.ones(2, 50, dtype=dtype))  # valid: no error
    with pytest.raises(ValueError, match=r"x must hold finite unit vectors.*1 of 100 are not.*norm 1\.1"):
        fit_von_mises_fisher(torch.cat([x[:1], torch.cat([x[1:, :49], 1.1 * x[1:, 49:]], 1)]))
    nan_point = x.clone()
    nan_point[0, 3, 1] = torch.nan
    with pytest.raises(ValueError, match="x must hold finite unit vectors.*norm nan"):
        fit_von_mises_fisher(nan_point)
    negative = torch.ones(2, 50, dtype=dtype)
    negative[1, 7] = -0.5
    with pytest.raises(ValueError, match="weights must be finite and non-negative"):
        fit_von_mises_fisher(x, negative)
    with pytest.raises(ValueError, match="weights must be finite and non-negative"):
        fit_von_mises_fisher(x, torch.full((2, 50), torch.inf, dtype=dtype))
    zero_sum = torch.ones(2, 50, dtype=dtype)
    zero_sum[0] = 0
    with pytest.raises(ValueError, match="positive sum for every fit"):
        fit_von_mises_fisher(x, zero_sum)
    # without validation (no host synchronisation) the same call runs and returns the raw value
    assert fit_von_mises_fisher(x, zero_sum, validate_args=False)[1][0].isnan()


# --- KL(Power Spherical || vMF) ------------------------------------------------------------------------


def _kl_same_mean(m, kappa_p, kappa_q):
    """The KL by 40-digit quadrature over the cosine w = mu^T z, when both means coincide."""
    mp.mp.dps = 40
    a, kp, kq = mp.mpf(m - 1) / 2, mp.mpf(kappa_p), mp.mpf(kappa_q)
    log_cp = -((2 * a + kp) * mp.log(2) + a * mp.log(mp.pi) + mp.loggamma(a + kp) - mp.loggamma(2 * a + kp))
    v = mp.mpf(m) / 2 - 1
    log_cq = (v * mp.log(kq) - (v + 1) * mp.log(2 * mp.pi) - mp.log(mp.besseli(v, kq)) if kq
              else mp.loggamma(v + 1) - mp.log(2) - (v + 1) * mp.log(mp.pi))
    log_sphere = mp.log(2) + a * mp.log(mp.pi) - mp.loggamma(a)  # |S^(m-2)|, the circles of constant w

    def integrand(w):
        log_p = log_cp + kp * mp.log1p(w)
        return mp.exp(log_p + log_sphere) * (1 - w * w) ** (a - 1) * (log_p - log_cq - kq * w)

    return float(mp.quad(integrand, [-1, 0, 0.9, 0.99, 0.999, 1]))


@pytest.mark.parametrize("m, kappa_p, kappa_q", [(3, 2.0, 3.0), (5, 10.0, 4.0), (10, 50.0, 60.0), (10, 0.0, 5.0),
                                                 (4, 3.0, 0.0), (2, 1.0, 2.0), (20, 300.0, 150.0)])
def test_kl_power_spherical_vmf_against_mpmath(device, m, kappa_p, kappa_q):
    loc = torch.eye(m, dtype=torch.float64, device=device)[0]
    p = PowerSpherical(loc, torch.tensor(kappa_p, dtype=torch.float64, device=device))
    q = VonMisesFisher(loc, torch.tensor(kappa_q, dtype=torch.float64, device=device))
    reference = _kl_same_mean(m, kappa_p, kappa_q)
    assert abs(kl_divergence(p, q).item() - reference) <= 1e-12 * abs(reference)


def test_kl_power_spherical_vmf_is_zero_between_two_uniforms(device):
    loc = torch.eye(5, dtype=torch.float64, device=device)[2]
    zero = torch.tensor(0.0, dtype=torch.float64, device=device)
    assert kl_divergence(PowerSpherical(loc, zero), VonMisesFisher(loc, zero)).item() == 0


def test_kl_power_spherical_vmf_against_monte_carlo_with_other_means(device):
    """Different means, batched: the mean of log p - log q over 200 000 draws of p, within 5
    standard errors."""
    torch.manual_seed(1)
    loc_p = torch.nn.functional.normalize(torch.randn(3, 6, dtype=torch.float64, device=device), dim=-1)
    loc_q = torch.nn.functional.normalize(torch.randn(3, 6, dtype=torch.float64, device=device), dim=-1)
    p = PowerSpherical(loc_p, torch.tensor([7.0, 0.5, 80.0], dtype=torch.float64, device=device))
    q = VonMisesFisher(loc_q, torch.tensor([3.0, 20.0, 1.0], dtype=torch.float64, device=device))
    z = p.sample((200_000,))
    log_ratio = p.log_prob(z) - q.log_prob(z)
    error = (kl_divergence(p, q) - log_ratio.mean(0)).abs()
    assert (error <= 5 * log_ratio.std(0) / math.sqrt(200_000)).all()


def test_kl_power_spherical_vmf_gradients_against_finite_differences():
    loc_p = torch.nn.functional.normalize(torch.randn(4, dtype=torch.float64), dim=0).requires_grad_()
    loc_q = torch.nn.functional.normalize(torch.randn(4, dtype=torch.float64), dim=0).requires_grad_()
    kappas = torch.tensor([3.0, 9.0], dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda lp, lq, k: kl_divergence(PowerSpherical(lp, k[0], validate_args=False),
                                                             VonMisesFisher(lq, k[1], validate_args=False)),
                             (loc_p, loc_q, kappas))
