"""The compiled CPU loops (svae.native, svae/kernels.cpp) against the torch code they follow.

Both paths consume the same random numbers in the same order, so from one seed they must give the
same samples: the same proposals accepted, and points that differ by rounding only. The loops
repeat the torch code's floating-point operations except for the order of a few sums, so values
agree to a few units in the last place of the quantities summed; the tolerances below say which.
"""
import warnings

import pytest
import torch
import torch.nn.functional as F

from svae import native, special
from svae.distributions import PowerSpherical, VonMisesFisher

EPS = {torch.float64: torch.finfo(torch.float64).eps, torch.float32: torch.finfo(torch.float32).eps}


def _both_paths(run):
    """``run()`` with the loops, then with the torch code alone, from the same seed."""
    assert native.kernels() is not None, "the compiled loops of svae/kernels.cpp did not build"
    torch.manual_seed(1)
    compiled = run()
    with native.disabled():
        torch.manual_seed(1)
        reference = run()
    return compiled, reference


def _sample_and_gradients(family, m, dtype, sample_shape=(3,)):
    """Samples of a batch spanning kappa in [0, 1e6] with random, pole and antipole directions, and
    the gradients of a fixed linear function of them in loc and kappa."""
    def run():
        generator = torch.Generator().manual_seed(0)
        loc = F.normalize(torch.randn(40, m, generator=generator, dtype=dtype), dim=-1)
        loc[0], loc[1] = 0, 0
        loc[0, 0], loc[1, 0] = 1, -1
        loc.requires_grad_()
        kappa = torch.cat([torch.zeros(1, dtype=dtype), torch.logspace(-3, 6, 39, dtype=dtype)]).requires_grad_()
        z = family(loc, kappa).rsample(sample_shape)
        weights = torch.linspace(-1, 1, m, dtype=dtype)
        return (z.detach(), *torch.autograd.grad((z * weights).sum(), (loc, kappa)))
    return run


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("m", [2, 3, 4, 11, 101])
@pytest.mark.parametrize("family", [VonMisesFisher, PowerSpherical])
def test_samples_and_gradients_agree(family, m, dtype):
    compiled, reference = _both_paths(_sample_and_gradients(family, m, dtype))
    (z, grad_loc, grad_kappa), (z_ref, grad_loc_ref, grad_kappa_ref) = compiled, reference
    # Points on the unit sphere: a few rounding errors of size 1 (8 eps covers the dot product of
    # up to m terms at the m of this test, whose errors partly cancel).
    assert (z - z_ref).abs().max() <= 8 * EPS[dtype]
    # Gradients are sums over the sample and the coordinates of terms up to |weights| = 1 and to
    # the size of the gradient itself: relative to that size, the same few roundings.
    for got, ref in ((grad_loc, grad_loc_ref), (grad_kappa, grad_kappa_ref)):
        scale = ref.abs().max().clamp_min(1)
        assert ((got - ref).abs() / scale).max() <= 64 * m * EPS[dtype]


def test_broadcast_sample_shapes_agree():
    """Parameters broadcast against a sample shape (the importance sampler's layout)."""
    compiled, reference = _both_paths(_sample_and_gradients(VonMisesFisher, 6, torch.float64, (5, 2)))
    for got, ref in zip(compiled, reference):
        assert got.shape == ref.shape
        assert torch.allclose(got, ref, rtol=1e-12, atol=1e-13)


def test_double_backward_runs_through_the_torch_code():
    """A gradient of a gradient (create_graph) is available on the compiled path, and exact."""
    loc = F.normalize(torch.randn(4, 6, dtype=torch.float64), dim=-1).requires_grad_()
    kappa = torch.tensor([0.5, 3.0, 40.0, 900.0], dtype=torch.float64, requires_grad=True)

    def sample(loc, kappa):
        torch.manual_seed(3)  # the same accepted proposals for every perturbed input
        return VonMisesFisher(loc, kappa, validate_args=False).rsample()

    assert native.kernels() is not None
    assert torch.autograd.gradcheck(sample, (loc, kappa))
    assert torch.autograd.gradgradcheck(sample, (loc, kappa))


@pytest.mark.parametrize("v", [0.0, 0.5, 1.0, 4.5, 49.5, 2499.0, "tensor"])
def test_bessel_terms_agree(v):
    x = torch.cat([torch.tensor([0.0, float("inf"), float("nan")], dtype=torch.float64),
                   torch.logspace(-6, 6, 3000, dtype=torch.float64)])
    order = torch.linspace(0, 300, x.numel(), dtype=torch.float64) if v == "tensor" else v

    def run():
        return [t.detach() for t in special._Bessel.apply(order, x, True)]

    compiled, reference = _both_paths(run)
    names = ("log_ive", "log_ive_over_power", "ratio", "complement")
    for name, got, ref in zip(names, compiled, reference):
        differ = (got != ref) & ~(got.isnan() & ref.isnan())
        got, ref = got[differ], ref[differ]
        if name in ("ratio", "complement"):  # both positive: compare their logarithms
            got, ref = got.log(), ref.log()
        # The power series and the Debye sum are summed in another order, and their logarithms
        # (up to ~r0 = 30 in size) differ by a few eps times that size; the ratio and its
        # complement, exp and -expm1 of a difference of such logarithms, carry it as a relative
        # difference, the logarithms of I_v as an absolute one below |log| = 1.
        tolerance = 64 * 30 * EPS[torch.float64] * ref.abs().clamp_min(1)
        assert ((got - ref).abs() <= tolerance).all(), (name, got, ref)


@pytest.mark.parametrize("outputs", [(0, 1, 2, 3), (1, 3), (0,), (2,)])
@pytest.mark.parametrize("v", [0.0, 4.5, "tensor"])
def test_bessel_gradients_agree(v, outputs):
    """The gradient in x of any combination of the four outputs, across both regimes and x = 0."""
    x = torch.cat([torch.zeros(1, dtype=torch.float64), torch.logspace(-4, 4, 500, dtype=torch.float64)])
    order = torch.linspace(0, 60, x.numel(), dtype=torch.float64) if v == "tensor" else v
    weights = torch.tensor([0.5, -1.5, 2.0, -0.75], dtype=torch.float64)

    def run():
        xg = x.clone().requires_grad_()
        values = special._Bessel.apply(order, xg, 0 in outputs)
        return torch.autograd.grad(sum(weights[i] * values[i] for i in outputs).sum(), xg)[0]

    got, ref = _both_paths(run)
    same = (got == ref) | (got.isnan() & ref.isnan())
    # The same formula on values that agree to ~2e-12 relative (test above): compare at that level.
    assert torch.allclose(got[~same], ref[~same], rtol=1e-11, atol=1e-13)


def test_the_torch_code_runs_where_the_loops_cannot_be_built(monkeypatch):
    import torch.utils.cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no compiler")

    native.kernels.cache_clear()
    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    try:
        with pytest.warns(RuntimeWarning, match="no compiler"):
            assert native.kernels() is None
        assert not native.usable(torch.ones(2))
        z = VonMisesFisher(torch.tensor([0.0, 1.0, 0.0, 0.0]), torch.tensor(5.0)).rsample((10,))
        assert torch.allclose(z.norm(dim=-1), torch.ones(10))
    finally:
        native.kernels.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.undo()
        assert native.kernels() is not None


def test_native_can_be_turned_off(monkeypatch):
    native.kernels.cache_clear()
    monkeypatch.setenv("SVAE_NATIVE", "0")
    try:
        assert native.kernels() is None
    finally:
        native.kernels.cache_clear()


def test_loops_take_only_cpu_tensors_of_one_floating_dtype():
    x64, x32 = torch.ones(2, dtype=torch.float64), torch.ones(2)
    assert native.usable(x64, x64) and native.usable(x32)
    with native.disabled():
        assert not native.usable(x64)
    assert native.usable(x64)
    assert not native.usable(x64, x32)
    assert not native.usable(torch.ones(2, dtype=torch.float16))
    assert not native.usable(x64.to("meta"))


def _layouts(kappa: torch.Tensor, loc: torch.Tensor):
    """The same parameters as (name, kappa, loc) in memory layouts other than contiguous rows:
    expanded from one value (stride 0, as Pyro's plates and torch's expand make them), a
    transposed batch, and every other element of a longer tensor."""
    n, m = loc.shape
    wide_kappa = torch.stack([kappa, kappa + 1], -1).flatten()
    wide_loc = torch.stack([loc, -loc], 1).flatten(0, 1)
    return [
        ("expanded", kappa[:1].expand(n), loc[:1].expand(n, m)),
        ("transposed", kappa.reshape(n // 2, 2).T, loc.reshape(n // 2, 2, m).transpose(0, 1)),
        ("strided", wide_kappa[::2], wide_loc[::2]),
    ]


@pytest.mark.parametrize("family", ["VonMisesFisher", "PowerSpherical", "SphericalCauchy"])
def test_parameters_in_any_memory_layout(family):
    """Values and gradients do not depend on how the parameters lie in memory: the compiled loops
    read contiguous rows, so every input reaching them is laid out first (a stride-0 concentration
    once reached the Bessel loop's backward and raised)."""
    import svae.distributions as distributions

    cls = getattr(distributions, family)
    generator = torch.Generator().manual_seed(0)
    loc = F.normalize(torch.randn(8, 5, generator=generator, dtype=torch.float64), dim=-1)
    kappa = torch.rand(8, generator=generator, dtype=torch.float64) * (0.9 if family == "SphericalCauchy" else 50)
    value = F.normalize(torch.randn(8, 5, generator=generator, dtype=torch.float64), dim=-1)

    def evaluate(kappa, loc):
        kappa, loc = kappa.detach().requires_grad_(), loc.detach().requires_grad_()
        q = cls(loc, kappa)
        torch.manual_seed(2)
        z = q.rsample()
        prior = distributions.HypersphericalUniform(5, dtype=torch.float64)
        terms = [q.log_prob(value.reshape(z.shape)), q.entropy(), torch.distributions.kl_divergence(q, prior), z.sum(-1)]
        grads = torch.autograd.grad(sum(t.sum() for t in terms), (kappa, loc))
        return [t.detach() for t in terms], grads

    for name, kappa_view, loc_view in _layouts(kappa, loc):
        assert not kappa_view.is_contiguous() and not loc_view.is_contiguous(), name
        terms, grads = evaluate(kappa_view, loc_view)
        ref_terms, ref_grads = evaluate(kappa_view.contiguous(), loc_view.contiguous())
        for got, ref in zip(terms, ref_terms):
            assert torch.allclose(got, ref, rtol=1e-14, atol=1e-14), (name, got, ref)
        for got, ref in zip(grads, ref_grads):
            assert torch.allclose(got, ref, rtol=1e-12, atol=1e-12), (name, got, ref)
