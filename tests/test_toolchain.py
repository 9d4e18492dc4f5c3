"""svae inside today's PyTorch toolchain: torch.compile (fullgraph), torch.func (vmap, grad,
jacrev), the sampler without host synchronisation, and low precision (bfloat16, float16, autocast).

Compiled code is compared with eager code on the same random numbers: Inductor's own random
number generator is turned off (``fallback_random``) and the eager run takes the sampler that
compiled code takes (the two-stage one; eager CPU code otherwise runs the exact loop, whose
random numbers differ).
"""
import contextlib

import pytest
import torch
from scipy import stats
from torch.distributions import kl_divergence
from torch.func import grad, jacrev, vmap

from svae import native, special
from svae.distributions import HypersphericalUniform, PowerSpherical, SphericalCauchy, VonMisesFisher, wood
from svae.nn.latent import latent_family
from svae.nn.objectives import elbo_terms
from svae.nn.vae import VAE

FAMILIES = [VonMisesFisher, PowerSpherical]
TOLERANCE = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.fixture
def same_sampler_as_compiled(monkeypatch):
    """Eager code on the CPU runs the two-stage sampler that compiled code runs, and compiled code
    draws its random numbers with torch's generator, as eager code does."""
    monkeypatch.setattr(wood, "_may_synchronise", lambda kappa: False)
    torch._dynamo.reset()
    with torch._inductor.config.patch(fallback_random=True):
        yield
    torch._dynamo.reset()


def _parameters(batch, m, dtype, device="cpu"):
    loc = torch.nn.functional.normalize(torch.randn(batch, m, dtype=dtype, device=device), dim=-1)
    kappa = torch.cat([torch.tensor([0.0, 1e-3, 1e4], dtype=dtype, device=device),
                       torch.rand(batch - 3, dtype=dtype, device=device) * 50])
    return loc, kappa


def everything(loc, kappa):
    """Every method of the three distributions, summed: what a user's model may call."""
    m = loc.shape[-1]
    vmf, power = VonMisesFisher(loc, kappa), PowerSpherical(loc, kappa)
    uniform = HypersphericalUniform(m, dtype=loc.dtype, device=loc.device)
    z, y = vmf.rsample(), power.rsample()
    return torch.stack([
        z.sum(), y.sum(), uniform.rsample((3,)).sum(),
        vmf.log_prob(z).sum(), power.log_prob(y).sum(), uniform.log_prob(z).sum(),
        vmf.entropy().sum(), power.entropy().sum(), uniform.entropy(),
        kl_divergence(vmf, uniform).sum(), kl_divergence(power, uniform).sum(),
        vmf.rejection_log_weight(z).sum(),
    ])


def _value_and_gradients(function, loc, kappa):
    loc, kappa = loc.clone().requires_grad_(), kappa.clone().requires_grad_()
    torch.manual_seed(7)
    values = function(loc, kappa)
    values.sum().backward()
    return values.detach(), loc.grad, kappa.grad


# Inductor generates and builds C++ for every graph (about 45 s here): it compiles the float32
# cases, AOTAutograd alone (the same capture, fake kernels and backward graph, run eagerly) the rest.
COMPILERS = [pytest.param("inductor", torch.float32, id="inductor-float32"),
             pytest.param("aot_eager", torch.float64, id="aot_eager-float64")]


@pytest.mark.parametrize("compiler, dtype", COMPILERS)
def test_every_method_compiles_without_graph_breaks_and_matches_eager(backend, same_sampler_as_compiled, compiler,
                                                                       dtype, device):
    loc, kappa = _parameters(8, 5, dtype, device)
    compiled = torch.compile(everything, fullgraph=True, backend=compiler)  # any graph break is an error
    for eager, traced in zip(_value_and_gradients(everything, loc, kappa), _value_and_gradients(compiled, loc, kappa)):
        torch.testing.assert_close(traced, eager, **TOLERANCE[dtype])


@pytest.mark.parametrize("compiler, correction", [("inductor", False), ("aot_eager", True)])
def test_a_whole_s_vae_step_compiles_and_matches_eager(backend, same_sampler_as_compiled, compiler, correction,
                                                        device):
    torch.manual_seed(0)
    model = VAE.mlp(784, (64, 32), latent_family("vmf", 10), "bernoulli").to(device)
    x = torch.rand(32, 784, device=device).bernoulli()

    def loss(x):  # encoder, vMF sample, KL, decoder
        return elbo_terms(model, x, correction=correction)["loss"]

    results = []
    for step in (loss, torch.compile(loss, fullgraph=True, backend=compiler)):
        model.zero_grad()
        torch.manual_seed(3)
        value = step(x)
        value.backward()  # the backward graph is compiled by AOTAutograd
        results.append((value.detach(), [p.grad.clone() for p in model.parameters()]))
    (eager, eager_grads), (traced, traced_grads) = results
    torch.testing.assert_close(traced, eager, rtol=1e-6, atol=0)
    for a, b in zip(traced_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


# --- no host synchronisation --------------------------------------------------------------------------


def test_sampling_off_the_cpu_never_reads_a_value_back():
    """Off the CPU, rsample and its backward must not synchronise (.item(), a Python loop on .any(),
    nonzero): run them on the meta device, which has shapes but no values, so any such read raises.
    The Power Spherical's concentration gradient (torch's _standard_gamma_grad) has no meta kernel:
    its sample is checked without it."""
    loc = torch.randn(64, 6, device="meta", requires_grad=True)
    kappa = torch.rand(64, device="meta", requires_grad=True)
    vmf = VonMisesFisher(loc, kappa, validate_args=False)
    z = vmf.rsample((2,))
    uniform = HypersphericalUniform(6, device="meta", validate_args=False)
    loss = z.sum() + vmf.log_prob(z).sum() + kl_divergence(vmf, uniform).sum() + vmf.rejection_log_weight(z).sum()
    loss.backward()
    assert kappa.grad.shape == kappa.shape and z.device.type == "meta"
    power = PowerSpherical(loc.detach(), kappa.detach(), validate_args=False)
    assert power.rsample((2,)).shape == (2, 64, 6) and uniform.rsample((5,)).shape == (5, 6)
    for m in (6, 5, 11):  # the Spherical Cauchy: odd d (finite sums), even d <= 8 (closed forms), even d > 8
        loc = torch.randn(64, m, device="meta", requires_grad=True)
        rho = torch.rand(64, device="meta", requires_grad=True)
        cauchy = SphericalCauchy(loc, rho, validate_args=False)
        y = cauchy.rsample((2,))
        prior = HypersphericalUniform(m, device="meta", validate_args=False)
        (y.sum() + cauchy.log_prob(y).sum() + kl_divergence(cauchy, prior).sum() + cauchy.mean.sum()).backward()
        assert rho.grad.shape == rho.shape


def test_the_meta_device_catches_a_host_synchronisation():
    """The test above can fail: a value read on the meta device raises."""
    with pytest.raises(RuntimeError, match="meta"):
        bool((torch.rand(3, device="meta") > 0).all())


# --- the two-stage sampler: the same distribution, the rare path exercised -------------------------------


@pytest.mark.parametrize("m, kappa", [(2, 1e4), (4, 0.5), (10, 50.0), (64, 10.0)])
def test_the_two_stage_sampler_draws_the_exact_sampler_s_distribution(backend, monkeypatch, m, kappa):
    # CPU only: the exact loop, the reference here, is the CPU's
    """Kolmogorov-Smirnov between the cosines of the exact loop and of the two-stage sampler, 40 000
    draws each: p > 1e-4 (a false alarm once in 10 000 runs; the seed is fixed)."""
    q = VonMisesFisher(torch.eye(m, dtype=torch.float64)[0], torch.tensor(kappa, dtype=torch.float64))
    exact = q.sample((40_000,))[:, 0]
    monkeypatch.setattr(wood, "_may_synchronise", lambda kappa: False)
    two_stage = q.sample((40_000,))[:, 0]
    assert torch.isfinite(two_stage).all()
    assert stats.ks_2samp(exact.numpy(), two_stage.numpy()).pvalue > 1e-4


def test_the_second_stage_draws_the_same_distribution(backend, monkeypatch):
    # CPU only, as the test above
    """One proposal in the first stage leaves about a third of the samples to the second (with
    room for all of them): its accepted proposals follow the target too (memorylessness)."""
    q = VonMisesFisher(torch.eye(5, dtype=torch.float64)[0], torch.tensor(2.0, dtype=torch.float64))
    exact = q.sample((40_000,))[:, 0]
    monkeypatch.setattr(wood, "_may_synchronise", lambda kappa: False)
    monkeypatch.setattr(wood, "_FIRST_PROPOSALS", 1)
    monkeypatch.setattr(wood, "_second_stage_slots", lambda n: n)
    calls = []
    first_accepted = wood._first_accepted
    monkeypatch.setattr(wood, "_first_accepted", lambda *a: calls.append(a) or first_accepted(*a))
    p, _ = wood.accepted_complements(torch.full((1000,), 2.0, dtype=torch.float64), 5)
    assert [call[2] for call in calls] == [1, wood._SECOND_PROPOSALS]  # both stages ran
    two_stage = q.sample((40_000,))[:, 0]
    assert torch.isfinite(two_stage).all() and torch.isfinite(p).all()
    assert stats.ks_2samp(exact.numpy(), two_stage.numpy()).pvalue > 1e-4


def test_a_sample_the_stages_cannot_place_is_nan_never_a_biased_value(monkeypatch):
    """With no room in the second stage, the samples the first stage left are NaN (every training
    loop stops at them), and the others are untouched."""
    monkeypatch.setattr(wood, "_may_synchronise", lambda kappa: False)
    monkeypatch.setattr(wood, "_FIRST_PROPOSALS", 1)
    monkeypatch.setattr(wood, "_second_stage_slots", lambda n: 0)
    p, q = wood.accepted_complements(torch.full((2000,), 1e4, dtype=torch.float64), 3)
    left = torch.isnan(p)
    assert 0 < left.sum() < 2000 and torch.equal(left, torch.isnan(q))
    assert (p[~left] > 0).all() and (q[~left] > 0).all()


# --- torch.func ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_vmap_grad_and_jacrev_over_densities_entropies_and_kls(backend, family, device):
    loc, kappa = _parameters(6, 5, torch.float64, device)
    z = torch.nn.functional.normalize(torch.randn(6, 5, dtype=torch.float64, device=device), dim=-1)
    uniform = HypersphericalUniform(5, dtype=torch.float64, device=device)
    batched = family(loc, kappa)

    def log_prob(l, k, x):
        return family(l, k).log_prob(x)

    torch.testing.assert_close(vmap(log_prob)(loc, kappa, z), batched.log_prob(z), rtol=1e-13, atol=0)
    torch.testing.assert_close(vmap(lambda l, k: family(l, k).entropy())(loc, kappa), batched.entropy())
    torch.testing.assert_close(vmap(lambda l, k: kl_divergence(family(l, k), uniform))(loc, kappa),
                               kl_divergence(batched, uniform))
    # gradients in kappa of the summed density, three ways: autograd, grad, vmap(grad), jacrev's diagonal
    k = kappa.clone().requires_grad_()
    family(loc, k).log_prob(z).sum().backward()
    torch.testing.assert_close(grad(lambda k: log_prob(loc, k, z).sum())(kappa), k.grad)
    torch.testing.assert_close(vmap(grad(log_prob, argnums=1))(loc, kappa, z), k.grad)
    torch.testing.assert_close(jacrev(lambda k: log_prob(loc, k, z))(kappa).diagonal(), k.grad)
    # the KL's gradient, as a Jacobian
    k = kappa.clone().requires_grad_()
    kl_divergence(family(loc, k), uniform).sum().backward()
    torch.testing.assert_close(jacrev(lambda k: kl_divergence(family(loc, k), uniform))(kappa).sum(0), k.grad)


def test_vmap_over_the_rejection_weight(backend, device):
    loc, kappa = _parameters(6, 5, torch.float64, device)
    z = VonMisesFisher(loc, kappa).sample()
    torch.testing.assert_close(vmap(lambda l, k, x: VonMisesFisher(l, k).rejection_log_weight(x))(loc, kappa, z),
                               VonMisesFisher(loc, kappa).rejection_log_weight(z))


@pytest.mark.parametrize("family", FAMILIES)
def test_vmap_over_rsample_draws_different_samples_with_gradients(backend, family, device):
    loc, kappa = _parameters(16, 4, torch.float64, device)
    one = loc[:1].expand(16, 4)  # one distribution, vmapped 16 times: the draws must differ
    z = vmap(lambda l, k: family(l, k).rsample(), randomness="different")(one, kappa[3:4].expand(16))
    assert z.shape == (16, 4) and torch.allclose(z.norm(dim=-1), torch.ones(16, dtype=torch.float64, device=device))
    assert len(set(z[:, 0].tolist())) == 16
    grads = vmap(grad(lambda l, k: family(l, k).rsample().sum(), argnums=1), randomness="different")(loc, kappa)
    assert grads.shape == (16,) and torch.isfinite(grads).all()


@pytest.mark.parametrize("function", [special.log_ive, special.log_ive_over_power, special.iv_ratio])
def test_vmap_grad_and_jacrev_over_every_special_function(backend, function, device):
    x = torch.tensor([0.0, 1e-3, 0.7, 5.0, 29.0, 31.0, 400.0, 1e6], dtype=torch.float64, device=device)
    v = 2.5
    if function is special.log_ive:  # its derivative at x = 0 is infinite for v > 0
        x = x[1:]
    torch.testing.assert_close(vmap(lambda t: function(v, t))(x), function(v, x))
    leaf = x.clone().requires_grad_()
    function(v, leaf).sum().backward()
    torch.testing.assert_close(vmap(grad(lambda t: function(v, t)))(x), leaf.grad)
    torch.testing.assert_close(jacrev(lambda t: function(v, t))(x).diagonal(), leaf.grad)
    orders = torch.full_like(x, v)  # a tensor of orders, vmapped with the arguments
    torch.testing.assert_close(vmap(function)(orders, x), function(v, x))
    pair = vmap(lambda t: torch.stack(special.log_ive_over_power_and_ratio(v, t)))(x)
    torch.testing.assert_close(pair, torch.stack(special.log_ive_over_power_and_ratio(v, x)).T)


def test_special_functions_compile_and_give_nan_outside_the_domain_there():
    # CPU only: eager CPU code is the one place the domain is checked, the contrast tested here
    """Eager CPU code raises ValueError for x < 0 (test_special.py); compiled code cannot check
    without a graph break, and gives NaN there instead (as torch's own special functions do)."""
    x = torch.tensor([-1.0, 0.0, 2.0, 50.0], dtype=torch.float64)
    compiled = torch.compile(lambda t: special.log_ive_over_power(1.5, t), fullgraph=True)
    out = compiled(x)
    assert torch.isnan(out[0]) and torch.equal(out[1:], special.log_ive_over_power(1.5, x[1:]))
    assert torch.isnan(vmap(lambda t: special.iv_ratio(1.5, t))(x)[0])


# --- low precision ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("family", FAMILIES)
def test_half_precision_parameters_give_the_float32_values_rounded(family, dtype, device):
    """Computed in float32 (float64 inside the special functions) and returned in the parameters'
    dtype: the result is the float32 path's on the same (rounded) inputs, rounded once."""
    loc, kappa = _parameters(32, 6, torch.float32, device)
    loc, kappa = loc.to(dtype), kappa.clamp(max=1e3).to(dtype)  # 1e4 overflows float16's range in places
    z = torch.nn.functional.normalize(torch.randn(32, 6, device=device), dim=-1).to(dtype)
    low, single = family(loc, kappa, validate_args=False), family(loc.float(), kappa.float(), validate_args=False)
    uniform = HypersphericalUniform(6, dtype=dtype, device=device)
    for got, want in [(low.log_prob(z), single.log_prob(z.float())), (low.entropy(), single.entropy()),
                      (kl_divergence(low, uniform), kl_divergence(single, HypersphericalUniform(6, device=device))),
                      (low.mean, single.mean)]:
        assert got.dtype == dtype
        torch.testing.assert_close(got, want.to(dtype), rtol=0, atol=0)
    sample = low.rsample((4,))
    assert sample.dtype == dtype and torch.isfinite(sample).all()
    torch.testing.assert_close(sample.float().norm(dim=-1), torch.ones(4, 32, device=device), rtol=0, atol=1e-2)


@pytest.mark.parametrize("latent", ["vmf", "power"])
def test_an_s_vae_step_under_bfloat16_autocast_matches_float32(latent, device):
    torch.manual_seed(0)
    model = VAE.mlp(784, (64, 32), latent_family(latent, 10), "bernoulli").to(device)
    x = torch.rand(64, 784, device=device).bernoulli()
    losses, grads = [], []
    for precision in (contextlib.nullcontext(), torch.autocast(device.type, dtype=torch.bfloat16)):
        model.zero_grad()
        torch.manual_seed(1)
        with precision:
            terms = elbo_terms(model, x, correction=latent == "vmf")
        terms["loss"].backward()
        losses.append(terms["loss"].float())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    # bfloat16 keeps 8 bits: the matrix products differ by about 1 % of their size
    torch.testing.assert_close(losses[1], losses[0], rtol=2e-2, atol=0)
    assert torch.isfinite(grads[1]).all()
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.95


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_an_s_vae_step_with_half_precision_parameters(dtype, device):
    torch.manual_seed(0)
    model = VAE.mlp(784, (64, 32), latent_family("vmf", 10), "bernoulli").to(device)
    x = torch.rand(64, 784, device=device).bernoulli()
    torch.manual_seed(1)
    reference = elbo_terms(model, x)["loss"]
    model.to(dtype)
    torch.manual_seed(1)
    loss = elbo_terms(model, x.to(dtype))["loss"]
    loss.backward()
    assert loss.dtype == dtype and all(torch.isfinite(p.grad).all() for p in model.parameters())
    torch.testing.assert_close(loss.float(), reference, rtol=2e-2, atol=0)



@pytest.mark.parametrize("loss", ["dense", "negative"])
def test_an_s_vgae_step_under_bfloat16_autocast_matches_float32(loss, device):
    """The graph VAE of link prediction on a random graph of 200 nodes under autocast (the GCN in
    float32 on the CPU, which has no bfloat16 sparse product; the decoder's products in bfloat16;
    the vMF in float32 inside): the loss is the float32 one to 2 %."""
    from svae.data.link_split import kipf_split
    from svae.experiments.linkpred import LinkPredConfig, LinkPredData, build_model, training_loss

    torch.manual_seed(0)
    edges = torch.randint(0, 200, (2, 800))
    data = LinkPredData(torch.rand(200, 30, device=device), kipf_split(edges[:, edges[0] != edges[1]], 200, seed=0))
    config = LinkPredConfig(dataset="cora", latent="vmf", loss=loss, device=device.type)
    model = build_model(config, 30).to(device)
    losses = []
    for precision in (contextlib.nullcontext(), torch.autocast(device.type, dtype=torch.bfloat16)):
        model.zero_grad()
        torch.manual_seed(1)
        with precision:
            value = training_loss(model, data, config)[0]
        value.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        losses.append(value.float())
    torch.testing.assert_close(losses[1], losses[0], rtol=2e-2, atol=0)
