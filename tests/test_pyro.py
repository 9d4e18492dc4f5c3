"""svae.pyro: svae's distributions inside Pyro models, guides and ELBOs (an SVI run that recovers a
posterior: docs/pyro.md, run by tests/test_readme.py)."""
import builtins
import importlib
import sys

import pyro  # a pinned test requirement (requirements.txt), optional for users: svae[pyro]
import pytest
import torch
import torch.nn.functional as F
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

import svae
import svae.pyro as sp

DT = torch.float64


def _loc(*values):
    return F.normalize(torch.tensor(values, dtype=DT), dim=-1)


FAMILIES = {
    "VonMisesFisher": lambda: sp.VonMisesFisher(_loc(1.0, -2.0, 0.5), torch.tensor(4.0, dtype=DT)),
    "PowerSpherical": lambda: sp.PowerSpherical(_loc(1.0, -2.0, 0.5), torch.tensor(4.0, dtype=DT)),
    "SphericalCauchy": lambda: sp.SphericalCauchy(_loc(1.0, -2.0, 0.5), torch.tensor(0.6, dtype=DT)),
    "HypersphericalUniform": lambda: sp.HypersphericalUniform(3, dtype=DT),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_every_distribution_samples_in_a_pyro_model(name):
    """pyro.sample calls it, plates expand it, to_event and masks wrap it, and it is still the svae
    distribution of the same name (same log_prob, registered KLs reach it)."""
    d = FAMILIES[name]()
    assert isinstance(d, getattr(svae, name)) and isinstance(d, TorchDistributionMixin)

    def model():
        with pyro.plate("points", 5):
            z = pyro.sample("z", d)
        with pyro.plate("pairs", 2):
            w = pyro.sample("w", d.expand([2, 4]).to_event(1))
        pyro.sample("masked", d.mask(False))
        return z, w

    trace = pyro.poutine.trace(model).get_trace()
    z, w = trace.nodes["z"]["value"], trace.nodes["w"]["value"]
    assert z.shape == (5, 3) and w.shape == (2, 4, 3)
    assert torch.allclose(z.norm(dim=-1), torch.ones(5, dtype=DT), atol=1e-12)
    trace.compute_log_prob()
    plain = getattr(svae, name)
    reference = plain(3, dtype=DT) if name == "HypersphericalUniform" else plain(d.loc, d.concentration)
    assert torch.allclose(trace.nodes["z"]["log_prob"], reference.log_prob(z), rtol=1e-14)
    assert trace.nodes["w"]["log_prob"].shape == (2,)
    uniform = sp.HypersphericalUniform(3, dtype=DT)
    assert torch.allclose(kl_divergence(d, uniform), kl_divergence(reference, svae.HypersphericalUniform(3, dtype=DT)))


class _WithoutCorrection(svae.VonMisesFisher, TorchDistributionMixin):
    """The vMF as Pyro would treat it by default: reparameterised, no score-function part."""


def _elbo_gradient(cls, particles, seed, concentration=2.0):
    """d ELBO / d (kappa, loc) from Pyro's Trace_ELBO for a vMF guide on S^4 (where the vMF samples by
    rejection; on S^2 it inverts the CDF), a uniform prior and the factor exp(1.5 mu.s):
    ELBO = 1.5 A(kappa) loc.s - KL(q || uniform) in closed form."""
    kappa = torch.tensor(concentration, dtype=DT, requires_grad=True)
    raw = torch.tensor([1.0, 0.0, 0.3, -0.5, 0.2], dtype=DT, requires_grad=True)
    s = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0], dtype=DT)

    def model():
        mu = pyro.sample("mu", sp.HypersphericalUniform(5, dtype=DT))
        pyro.factor("likelihood", 1.5 * (mu * s).sum(-1))

    def guide():
        pyro.sample("mu", cls(F.normalize(raw, dim=0), kappa))

    torch.manual_seed(seed)
    elbo = Trace_ELBO(num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=0)
    loss = elbo.differentiable_loss(model, guide)
    return torch.autograd.grad(-loss, (kappa, raw)), (kappa, raw, s)


def test_vmf_gradient_is_the_pathwise_one_plus_the_rejection_correction():
    """With the same random numbers, Pyro's gradient is exactly svae's g_rep + g_cor for the Monte
    Carlo ELBO f(z) = 1.5 z.s + log p(z) - log q(z): surrogate f + f.detach() (w - w.detach()),
    w the log acceptance weight. Without the score part it lacks g_cor, which is not 0."""
    (got_kappa, got_raw), (kappa, raw, s) = _elbo_gradient(sp.VonMisesFisher, particles=1, seed=3)
    torch.manual_seed(3)
    q = svae.VonMisesFisher(F.normalize(raw, dim=0), kappa)
    z = q.rsample()
    f = 1.5 * (z * s).sum() + svae.HypersphericalUniform(5, dtype=DT).log_prob(z) - q.log_prob(z)
    w = q.rejection_log_weight(z.detach())
    expected = torch.autograd.grad(f + f.detach() * (w - w.detach()), (kappa, raw), retain_graph=True)
    assert torch.allclose(got_kappa, expected[0], rtol=1e-12) and torch.allclose(got_raw, expected[1], rtol=1e-12)

    (plain_kappa, _), _ = _elbo_gradient(_WithoutCorrection, particles=1, seed=3)
    g_cor = torch.autograd.grad(f.detach() * w, kappa)[0]
    assert g_cor.abs() > 1e-3
    assert torch.allclose(plain_kappa, got_kappa - g_cor, rtol=1e-12)


def test_vmf_elbo_gradient_is_unbiased():
    """The mean of Pyro's gradient over 2e5 particles against the closed-form ELBO's derivative,
    within 4 standard errors (estimated from 8 independent batches)."""
    batches = torch.stack([torch.cat([g.reshape(-1) for g in _elbo_gradient(sp.VonMisesFisher, 25_000, seed)[0]])
                           for seed in range(8)])
    _, (kappa, raw, s) = _elbo_gradient(sp.VonMisesFisher, 1, 0)
    q = svae.VonMisesFisher(F.normalize(raw, dim=0), kappa)
    exact = 1.5 * (q.mean * s).sum() - kl_divergence(q, svae.HypersphericalUniform(5, dtype=DT))
    exact = torch.cat([g.reshape(-1) for g in torch.autograd.grad(exact, (kappa, raw))])
    mean, stderr = batches.mean(0), batches.std(0) / 8 ** 0.5
    assert ((mean - exact).abs() <= 4 * stderr).all(), (mean, exact, stderr)


def test_mean_field_elbo_takes_the_closed_form_kl_of_fully_reparameterised_guides():
    """TraceMeanField_ELBO uses the registered KL to the uniform for a Power Spherical guide (its
    loss is exactly -E[log lik] + KL with no sampled log q); the vMF, partly reparameterised, is
    refused there, as Pyro refuses every such guide."""
    def model():
        mu = pyro.sample("mu", sp.HypersphericalUniform(3, dtype=DT))
        pyro.factor("likelihood", 0 * mu.sum())

    kappa = torch.tensor(3.0, dtype=DT)
    loc = _loc(0.0, 1.0, 1.0)
    for cls in (sp.PowerSpherical, sp.SphericalCauchy):
        concentration = kappa if cls is sp.PowerSpherical else torch.tensor(0.5, dtype=DT)
        loss = TraceMeanField_ELBO().loss(model, lambda: pyro.sample("mu", cls(loc, concentration)))
        expected = kl_divergence(cls(loc, concentration), sp.HypersphericalUniform(3, dtype=DT)).item()
        assert loss == pytest.approx(expected, rel=1e-12)
    with pytest.raises(NotImplementedError, match="fully reparameterized"):
        TraceMeanField_ELBO().loss(model, lambda: pyro.sample("mu", sp.VonMisesFisher(loc, kappa)))


def test_without_pyro_the_import_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_pyro(name, *args, **kwargs):
        if name == "pyro" or name.startswith("pyro."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyro)
    monkeypatch.delitem(sys.modules, "svae.pyro")
    with pytest.raises(ImportError, match=r"pip install 'svae\[pyro\]'"):
        importlib.import_module("svae.pyro")
