"""SphericalCauchy against ground truths that share no code with it: its density formula integrated
by mpmath (normaliser, mean, entropy, KL and their derivatives), the Beta law of a uniform
direction's cosine (goodness of fit of the sampler), and Monte Carlo."""
import math

import mpmath as mp
import pytest
import torch
from scipy import stats
from torch.distributions import kl_divergence
from torch.func import grad, jacrev, vmap

from svae import HypersphericalUniform, SphericalCauchy
from svae.distributions import sphere

F64 = torch.float64


def unit(*shape, dtype=F64, device="cpu"):
    return torch.nn.functional.normalize(torch.randn(*shape, dtype=dtype, device=device), dim=-1)


def unit_mp(v: torch.Tensor) -> list:
    v = [mp.mpf(x) for x in v.tolist()]
    norm = mp.sqrt(mp.fsum(x * x for x in v))
    return [x / norm for x in v]


def log_area(m: int):
    """log |S^(m-1)| in mpmath."""
    return mp.log(2) + mp.mpf(m) / 2 * mp.log(mp.pi) - mp.loggamma(mp.mpf(m) / 2)


def density_integral(d: int, rho, f):
    r"""E_q[f(t)], t = mu^T z, from the density formula alone: the integral over theta (t = cos theta)
    of |S^(d-1)| sin^(d-1) theta q(cos theta) f(cos theta), with breakpoints where q is peaked."""
    rho = mp.mpf(rho)
    log_ring = log_area(d)  # of S^(d-1), the ring of points at one angle from loc

    def integrand(theta):
        distance = (1 - rho) ** 2 + 2 * rho * (1 - mp.cos(theta))  # |z - rho mu|^2
        log_q = d * (mp.log1p(-rho) + mp.log1p(rho) - mp.log(distance)) - log_area(d + 1)
        return mp.exp(log_ring + log_q) * mp.sin(theta) ** (d - 1) * f(mp.cos(theta), log_q)

    width = 1 - rho
    points = [0] + [min(width * 4 ** j, mp.pi / 2) for j in range(-2, 30) if width * 4 ** j < mp.pi / 2] + [mp.pi / 2, mp.pi]
    return mp.quad(integrand, sorted(set(points)))


CELLS = [(d, rho) for d in (1, 2, 3, 4, 5, 6, 8, 9, 10, 16, 20, 40, 64, 65)
         for rho in (1e-6, 0.3, 0.69999, 0.7, 0.9, 0.999, 1 - 2 ** -30)]


@pytest.mark.parametrize("d", sorted({d for d, _ in CELLS}))
def test_normaliser_mean_entropy_and_kl_match_mpmath(d):
    """The density integrates to 1; mean, entropy and KL to the uniform to 1e-12 (relative)."""
    mp.mp.dps = 30
    rhos = [rho for dd, rho in CELLS if dd == d]
    q = SphericalCauchy(torch.eye(d + 1, dtype=F64)[0].expand(len(rhos), d + 1), torch.tensor(rhos, dtype=F64))
    mean, entropy = q.mean[:, 0], q.entropy()
    kl = kl_divergence(q, HypersphericalUniform(d + 1, dtype=F64))
    for i, rho in enumerate(rhos):
        assert abs(density_integral(d, rho, lambda t, log_q: 1) - 1) < 1e-15
        want_mean = density_integral(d, rho, lambda t, log_q: t)
        want_entropy = -density_integral(d, rho, lambda t, log_q: log_q)
        want_kl = log_area(d + 1) - want_entropy
        for got, want in [(mean[i], want_mean), (entropy[i], want_entropy), (kl[i], want_kl)]:
            assert abs(got.item() - float(want)) <= 1e-12 * abs(float(want)), (d, rho, got.item(), float(want))


@pytest.mark.parametrize("d, rho", [(1, 0.5), (2, 0.3), (2, 0.9), (7, 0.95), (10, 0.7001), (40, 0.99)])
def test_gradients_of_kl_and_mean_match_mpmath_derivatives(d, rho):
    mp.mp.dps = 30
    r = torch.tensor(rho, dtype=F64, requires_grad=True)
    q = SphericalCauchy(torch.eye(d + 1, dtype=F64)[0], r)
    kl_slope, = torch.autograd.grad(kl_divergence(q, HypersphericalUniform(d + 1, dtype=F64)), r)
    mean_slope, = torch.autograd.grad(SphericalCauchy(torch.eye(d + 1, dtype=F64)[0], r).mean[0], r)
    entropy = lambda s: -density_integral(d, s, lambda t, log_q: log_q)  # noqa: E731
    want_kl = -mp.diff(entropy, mp.mpf(rho))
    want_mean = mp.diff(lambda s: density_integral(d, s, lambda t, log_q: t), mp.mpf(rho))
    assert abs(kl_slope.item() - float(want_kl)) <= 1e-9 * abs(float(want_kl))
    assert abs(mean_slope.item() - float(want_mean)) <= 1e-9 * abs(float(want_mean))


@pytest.mark.parametrize("d", [1, 2, 4, 9, 40])
def test_log_prob_is_the_density_formula(d):
    mp.mp.dps = 30
    loc = unit(d + 1)
    rho = torch.tensor([0.0, 0.5, 0.99, 1 - 2 ** -40], dtype=F64)
    z = torch.stack([loc, -loc, unit(d + 1), torch.nn.functional.normalize(loc + 1e-9 * unit(d + 1), dim=-1)])
    got = SphericalCauchy(loc, rho[:, None]).log_prob(z)  # (4 rho, 4 points)
    for i, r in enumerate(rho.tolist()):
        for j in range(4):
            # on the sphere: the float64 vectors' norms differ from 1 by ~1e-16, which near loc at
            # rho = 1 - 2^-40 would move |z - rho mu|^2 more than the density's precision
            point, direction = unit_mp(z[j]), unit_mp(loc)
            distance = mp.fsum((p - r * m) ** 2 for p, m in zip(point, direction))
            want = d * (mp.log(1 - mp.mpf(r) ** 2) - mp.log(distance)) - log_area(d + 1)
            assert abs(got[i, j].item() - float(want)) <= 1e-12 * max(1, abs(float(want)))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("d", [1, 2, 5, 20, 64])
@pytest.mark.parametrize("rho", [0.1, 0.8, 0.999])
def test_samples_follow_the_spherical_cauchy(d, rho, dtype, device):
    """The Möbius map is monotone in the cosine t = mu^T z: u = mu^T y of the uniform direction it came
    from is ((1 + r^2) t - 2 r) / ((1 + r^2) - 2 r t), and (1 + u) / 2 ~ Beta(d/2, d/2) (KS test, n = 20000);
    the component orthogonal to loc has mean 0; log_prob of the draws averages to minus the entropy."""
    loc = unit(d + 1, dtype=dtype, device=device)
    q = SphericalCauchy(loc, torch.tensor(rho, dtype=dtype, device=device))
    z = q.sample((20000,))
    assert sphere.check(z).all()
    # with s = 1 - t = |z - mu|^2 / 2 (in float64, from the draws: a float32 t near 1 keeps too few
    # digits of 1 - t), (1 + u) / 2 = (1 - r)^2 (1 - s/2) / ((1 - r)^2 + 2 r s), without cancellation
    s = 0.5 * (z.double() - loc.double()).square().sum(-1).cpu()
    r = torch.tensor(rho, dtype=dtype).double()
    half_one_plus_u = (1 - r) ** 2 * (1 - s / 2) / ((1 - r) ** 2 + 2 * r * s)
    p = stats.kstest(half_one_plus_u.clamp(0, 1).numpy(), stats.beta(d / 2, d / 2).cdf).pvalue
    assert p > 1e-4, p
    if dtype == F64:
        tangent = (z - (z @ loc)[:, None] * loc).cpu()
        assert (tangent.mean(0).abs() < 5 * tangent.std(0) / math.sqrt(len(z)) + 1e-12).all()
        log_q = q.log_prob(z).cpu()
        assert abs(-log_q.mean() - q.entropy().cpu()) < 5 * log_q.std() / math.sqrt(len(z))


def test_reparameterised_gradients_are_unbiased():
    """d/d rho of E[mu^T z] by rsample (Monte Carlo) against the exact derivative of the mean."""
    d, rho = 6, torch.tensor(0.6, dtype=F64, requires_grad=True)
    loc = torch.eye(d + 1, dtype=F64)[0]
    exact, = torch.autograd.grad(SphericalCauchy(loc, rho).mean[0], rho)
    slopes = []
    for _ in range(20):
        slope, = torch.autograd.grad(SphericalCauchy(loc, rho).rsample((5000,))[:, 0].mean(), rho)
        slopes.append(slope.item())
    estimate = torch.tensor(slopes, dtype=F64)
    assert abs(estimate.mean() - exact) < 5 * estimate.std() / math.sqrt(len(slopes))


@pytest.mark.parametrize("d", [1, 3, 10])
def test_rho_zero_is_uniform_and_rho_near_one_stays_finite(d, device):
    m = d + 1
    uniform = HypersphericalUniform(m, dtype=F64, device=device)
    q = SphericalCauchy(unit(m, device=device), torch.tensor(0.0, dtype=F64, device=device))
    z = uniform.sample((10,))
    torch.testing.assert_close(q.log_prob(z), uniform.log_prob(z), rtol=1e-14, atol=0)
    assert kl_divergence(q, uniform).item() == 0.0 and q.mean.abs().max().item() == 0.0
    for dtype in (torch.float32, F64):
        loc = unit(m, dtype=dtype, device=device).requires_grad_()
        rho = torch.tensor(1 - torch.finfo(dtype).eps / 2, dtype=dtype, device=device, requires_grad=True)
        near = SphericalCauchy(loc, rho)
        sample = near.rsample((1000,))
        loss = sample.sum() + near.log_prob(sample).sum() + near.log_prob(-loc.detach()) + near.entropy() + \
            kl_divergence(near, HypersphericalUniform(m, dtype=dtype, device=device)) + near.mean.sum()
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(loc.grad).all() and torch.isfinite(rho.grad)
        assert sphere.check(sample).all()


@pytest.mark.parametrize("d", [2, 9, 40])
def test_float32_results_are_the_float64_ones_rounded(d, device):
    loc, rho = unit(d + 1, device=device), torch.tensor([0.2, 0.7, 0.99, 0.99999], dtype=F64, device=device)
    loc32, rho32 = loc.float(), rho.float()
    z = SphericalCauchy(loc32, rho32[:, None]).sample()  # points in float32, evaluated in both precisions
    wide = SphericalCauchy(loc32.double(), rho32.double()[:, None], validate_args=False)  # |z| - 1 ~ 1e-7
    narrow = SphericalCauchy(loc32, rho32[:, None])
    torch.testing.assert_close(narrow.log_prob(z), wide.log_prob(z.double()).float(), rtol=0, atol=0)
    torch.testing.assert_close(narrow.entropy(), wide.entropy().float(), rtol=0, atol=0)


@pytest.mark.parametrize("loc, rho, message", [
    (torch.tensor([1.0, 0.0]), 1.0, "concentration"), (torch.tensor([1.0, 0.0]), -0.1, "concentration"),
    (torch.tensor([1.0, 0.0]), float("nan"), "concentration"), (torch.tensor([2.0, 0.0]), 0.5, "loc"),
    (torch.tensor([1.0]), 0.5, "loc")])
def test_bad_parameters_name_the_argument(loc, rho, message):
    with pytest.raises(ValueError, match=message):
        SphericalCauchy(loc, rho, validate_args=True)


def test_shapes_expand_and_broadcasting(device):
    q = SphericalCauchy(unit(3, 1, 5, device=device), torch.rand(4, dtype=F64, device=device) * 0.9)
    assert q.batch_shape == (3, 4) and q.event_shape == (5,)
    z = q.rsample((2,))
    assert z.shape == (2, 3, 4, 5) and q.log_prob(z).shape == (2, 3, 4)
    assert q.entropy().shape == (3, 4) and q.mean.shape == q.mode.shape == (3, 4, 5)
    e = SphericalCauchy(unit(5, device=device), 0.5).expand((2, 3))
    assert e.sample((4,)).shape == (4, 2, 3, 5) and e.entropy().shape == (2, 3)


def test_vmap_grad_jacrev_and_compile(device):
    loc, rho = unit(6, 5, device=device), torch.tensor([0.0, 0.1, 0.5, 0.7, 0.9, 0.999], dtype=F64, device=device)
    z = unit(6, 5, device=device)
    uniform = HypersphericalUniform(5, dtype=F64, device=device)
    batched = SphericalCauchy(loc, rho)
    torch.testing.assert_close(vmap(lambda l, r, x: SphericalCauchy(l, r).log_prob(x))(loc, rho, z), batched.log_prob(z))
    kl = lambda r: kl_divergence(SphericalCauchy(loc, r), uniform)  # noqa: E731
    r = rho.clone().requires_grad_()
    kl(r).sum().backward()
    torch.testing.assert_close(grad(lambda r: kl(r).sum())(rho), r.grad)
    torch.testing.assert_close(jacrev(kl)(rho).diagonal(), r.grad)
    draws = vmap(lambda l, r: SphericalCauchy(l, r).rsample(), randomness="different")(loc, rho)
    assert sphere.check(draws).all()

    def everything(loc, rho):
        q = SphericalCauchy(loc, rho)
        sample = q.rsample()
        return sample.sum() + q.log_prob(sample).sum() + q.entropy().sum() + kl_divergence(q, uniform).sum() + \
            q.mean.sum()

    torch._dynamo.reset()
    with torch._inductor.config.patch(fallback_random=True):
        compiled = torch.compile(everything, fullgraph=True, backend="aot_eager")
        results = []
        for function in (everything, compiled):
            l, r = loc.clone().requires_grad_(), rho.clone().requires_grad_()
            torch.manual_seed(5)
            value = function(l, r)
            value.backward()
            results.append((value.detach(), l.grad, r.grad))
    torch._dynamo.reset()
    for eager, traced in zip(*results):
        torch.testing.assert_close(traced, eager, rtol=1e-12, atol=1e-12)
