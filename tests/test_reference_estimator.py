"""scripts/reference_ll_estimator.py: the paper's example code's log-likelihood estimator, whose
decoder term sees one code only, so that it is the ELBO at K = 1 and, with more samples, lies
between the ELBO and the reconstruction term but away from the importance-sampling estimate."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from svae.nn.latent import latent_family
from svae.nn.objectives import elbo_terms, importance_log_likelihood
from svae.nn.vae import VAE

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reference_ll_estimator.py"
sys.path.insert(0, str(SCRIPT.parent))  # the script imports its helper from its own folder, as `python scripts/x.py` lets it


@pytest.fixture(scope="module")
def estimator():
    spec = importlib.util.spec_from_file_location("reference_ll_estimator", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_estimate


def within(a: torch.Tensor, b: torch.Tensor, z: float = 5.0) -> bool:
    """Means of two independent samples agree within z standard errors of their difference."""
    stderr = (a.var() / len(a) + b.var() / len(b)).sqrt()
    return bool((a.mean() - b.mean()).abs() <= z * stderr)


@pytest.mark.parametrize("family, raw_scale", [("vmf", 10.0), ("normal", -1.0)])
def test_it_is_the_elbo_at_one_sample_and_not_importance_sampling_above(estimator, family, raw_scale):
    torch.manual_seed(0)
    model = VAE.mlp(6, (8,), latent_family(family, 2), "bernoulli")
    with torch.no_grad():
        model.encoder[-1].bias[-1] = raw_scale  # a concentrated posterior: KL, between ELBO and RE, is large
        for weight in model.decoder.parameters():  # a decoder that varies with z, so that log p(x) stands apart
            weight.mul_(2)
    x = (torch.rand(1, 6) > 0.5).float().expand(20_000, 6)
    with torch.no_grad():
        terms = elbo_terms(model, x)
        one = estimator(model, x, samples=1)
        many = estimator(model, x[:4000], samples=500)
        importance = importance_log_likelihood(model, x[:4000], 500)
    elbo, recon = terms["elbo"].double(), terms["recon"].double()
    assert terms["kl"][0] > 0.5
    assert within(one, elbo) and not within(one, recon)
    assert elbo.mean() < many.mean() < recon.mean() and not within(many, elbo) and not within(many, recon)
    assert not within(many, importance)  # the decoder at every sample would estimate log p(x)


def test_the_decoder_sees_one_code_per_image_whatever_the_number_of_samples(estimator):
    torch.manual_seed(0)
    model = VAE.mlp(6, (8,), latent_family("vmf", 2), "bernoulli")
    codes = []
    model.decoder.register_forward_pre_hook(lambda module, args: codes.append(args[0].shape))
    estimator(model, torch.ones(5, 6), samples=300)
    assert codes == [torch.Size([5, 3])]  # the importance-sampling estimate would decode (300, 5, 3) codes
