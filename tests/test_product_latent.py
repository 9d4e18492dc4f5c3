"""Product-of-spheres latents: the split rule, the product's densities and KL against its factors,
today's single sphere unchanged, and a VAE that trains with one."""
import math

import pytest
import torch
from torch.distributions import kl_divergence

from svae.distributions import HypersphericalUniform, PowerSpherical, SphericalCauchy, VonMisesFisher
from svae.distributions.hyperspherical_uniform import log_sphere_area
from svae.nn.latent import PowerSphericalLatent, VonMisesFisherLatent, latent_family
from svae.nn.objectives import elbo_terms, importance_log_likelihood
from svae.nn.product import ProductOfSpheres, sphere_dims
from svae.nn.vae import VAE


@pytest.mark.parametrize("dim, spheres, dims", [(10, 1, [10]), (10, 2, [5, 5]), (10, 3, [4, 3, 3]),
                                                (40, 8, [5] * 8), (5, 5, [1] * 5), (7, 4, [2, 2, 2, 1])])
def test_degrees_of_freedom_are_split_as_stated(dim, spheres, dims):
    assert sphere_dims(dim, spheres) == dims
    if spheres > 1:
        latent = latent_family("vmf", dim, spheres=spheres)
        assert latent.code_dim == dim + spheres and latent.num_params == dim + 2 * spheres


def test_one_sphere_is_today_s_family():
    assert type(latent_family("vmf", 10, spheres=1)) is VonMisesFisherLatent
    assert type(latent_family("power", 10)) is PowerSphericalLatent


@pytest.mark.parametrize("name, spheres, message", [("vmf", 0, "spheres must be an int in"),
                                                    ("power", 11, r"spheres must be an int in \[1, dim = 10\]"),
                                                    ("vmf", 2.0, "spheres must be an int"),
                                                    ("cauchy", 1.0, "spheres must be an int"),
                                                    ("vmf", True, "spheres must be an int"),
                                                    ("normal", 2, "spheres other than 1 applies to the spherical")])
def test_bad_sphere_counts_are_named(name, spheres, message):
    with pytest.raises(ValueError, match=message):
        latent_family(name, 10, spheres=spheres)


SOFTPLUS_PLUS_ONE = lambda raw: torch.nn.functional.softplus(raw) + 1  # noqa: E731


@pytest.mark.parametrize("name, family, concentration", [("vmf", VonMisesFisher, SOFTPLUS_PLUS_ONE),
                                                         ("power", PowerSpherical, SOFTPLUS_PLUS_ONE),
                                                         ("cauchy", SphericalCauchy, torch.sigmoid)])
def test_the_product_is_its_factors(device, name, family, concentration):
    """Each block of the code is a sample of its own sphere's posterior, built from its own slice
    of the encoder's output; log q, entropy, KL and the prior are the sums of the factors'."""
    latent = latent_family(name, 10, spheres=3)  # S^4 x S^3 x S^3
    raw = torch.randn(7, latent.num_params, dtype=torch.float64, device=device)
    q = latent.posterior(raw)
    z = q.rsample()
    assert z.shape == (7, 13) and q.batch_shape == (7,) and q.event_shape == (13,)
    blocks, chunks = z.split([5, 4, 4], dim=-1), raw.split([6, 5, 5], dim=-1)
    factors = [family(torch.nn.functional.normalize(c[..., :-1], dim=-1), concentration(c[..., -1])) for c in chunks]
    for block in blocks:
        torch.testing.assert_close(block.norm(dim=-1), torch.ones(7, dtype=torch.float64, device=device))
    torch.testing.assert_close(q.log_prob(z), sum(f.log_prob(b) for f, b in zip(factors, blocks)))
    torch.testing.assert_close(q.entropy(), sum(f.entropy() for f in factors))
    kl = sum(kl_divergence(f, HypersphericalUniform(f.dim, dtype=torch.float64, device=device)) for f in factors)
    torch.testing.assert_close(latent.kl(q), kl)
    prior = -(log_sphere_area(5) + 2 * log_sphere_area(4))
    torch.testing.assert_close(latent.prior_log_prob(z), torch.full((7,), prior, dtype=torch.float64, device=device))
    torch.testing.assert_close(latent.point(q), torch.cat([f.loc for f in factors], dim=-1))
    weight = latent.rejection_log_weight(q, z)
    if name == "vmf":  # the joint proposal's weight is the product of the spheres'
        expected = sum(f.rejection_log_weight(b) for f, b in zip(factors, blocks) if f.dim != 3)
        torch.testing.assert_close(weight, expected)
    else:
        assert weight is None


def test_the_kl_of_a_product_against_monte_carlo():
    """E_q[log q(z) - log p(z)] over 100 000 draws, within 5 standard errors of the summed closed forms."""
    latent = latent_family("vmf", 6, spheres=2)
    q = latent.posterior(torch.tensor([[0.3, -1.0, 2.0, 0.5, 1.5, 0.1, 0.7, -0.2, 3.0, 0.4]], dtype=torch.float64))
    z = q.sample((100_000,))
    log_ratio = q.log_prob(z) - latent.prior_log_prob(z)
    assert abs(latent.kl(q).item() - log_ratio.mean().item()) <= 5 * log_ratio.std().item() / math.sqrt(100_000)


@pytest.mark.parametrize("name", ["vmf", "power", "cauchy"])
def test_a_vae_with_a_product_latent_trains(device, name):
    torch.manual_seed(0)
    latent = latent_family(name, 10, spheres=2)
    assert isinstance(latent, ProductOfSpheres)
    model = VAE.mlp(784, (64, 32), latent, "bernoulli").to(device)
    x = torch.rand(32, 784, device=device).bernoulli()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        terms = elbo_terms(model, x, correction=name == "vmf")
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(terms["loss"].item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert model.embed(x).shape == (32, 12)
    assert torch.isfinite(importance_log_likelihood(model, x[:4], n_samples=20)).all()


def test_experiments_take_a_number_of_spheres():
    from svae.experiments.linkpred import LinkPredConfig
    from svae.experiments.linkpred import build_model as build_graph_model
    from svae.experiments.mnist import MnistConfig, build_model

    assert build_model(MnistConfig(latent="power", dim=10, spheres=3)).latent.code_dim == 13
    assert isinstance(build_graph_model(LinkPredConfig(latent="vmf", spheres=4), 30).latent, ProductOfSpheres)
    with pytest.raises(ValueError, match="spheres other than 1 applies to the spherical families"):
        MnistConfig(latent="normal", spheres=2)


def test_records_and_checkpoints_from_before_spheres_existed_still_match(tmp_path):
    """A field added to a configuration counts as its default in files written before it: the
    committed records (and checkpoints, saved models) still match spheres = 1, and only that."""
    import json

    from svae.experiments.grid import done_record
    from svae.experiments.mnist import MnistConfig
    from svae.records import config_differences

    config = MnistConfig(latent="vmf", dim=5)
    old = json.loads(json.dumps({k: v for k, v in vars(config).items() if k != "spheres"}))
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"config": old, "metrics": {}}))
    assert done_record(path, config) is not None
    assert done_record(path, MnistConfig(latent="vmf", dim=5, spheres=5)) is None
    assert config_differences(old, MnistConfig(latent="vmf", dim=5, spheres=5)) == [("spheres", 1, 5)]
    assert config_differences({**old, "device": "cuda"}, config, ignore=("device",)) == []
