"""The paper's MNIST log-likelihood estimator, as its TensorFlow example computes it, on our models.

    python scripts/reference_ll_estimator.py [--dims 2 5 10 20 40] [--latents normal vmf]
        [--samples 500] [--profile paper] [--json PATH]

The importance-sampling estimate of log p(x) is log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x) with
z_k ~ q(z|x): the decoder is evaluated at every sample. The example of the paper's own code
(github.com/nicola-decao/s-vae-tf, examples/mnist.py, function `log_likelihood`) evaluates the
decoder term once, at the single code z_0 its model drew for the ELBO, and the K samples enter only
through the prior and the posterior:

    log p(x|z_0) + log (1/K) sum_k p(z_k) / q(z_k|x).

That is not a bound on log p(x). Its expectation is RE + E[log (1/K) sum_k p(z_k)/q(z_k|x)], i.e. the
ELBO plus a term that depends on the posterior alone (between 0 and KL(q || p), growing with K and
with the spread of log p/q under q), not on the decoder. This script evaluates both estimators on
the models `svae reproduce mnist --profile PROFILE` trained (``--models`` names another grid's
folder), over the 10 000 test images binarised as `svae mnist` binarises them for the seed
(`binarized_test_set`; records written before it existed were evaluated on other draws), and sets
both next to the paper's LL column (PAPER.md, Table 1).
"""
from __future__ import annotations

import argparse
import itertools
import math
import time
from dataclasses import replace

import torch
from trained_mnist import add_grid_arguments, load_trained

from svae.experiments.mnist import binarized_test_set, load_data, test_log_likelihood
from svae.experiments.paper import MNIST_TABLE1
from svae.records import write_record

FAMILY_INDEX = {"normal": 0, "vmf": 1}  # MNIST_TABLE1's (N-VAE, S-VAE) order


@torch.no_grad()
def reference_estimate(model, x: torch.Tensor, samples: int, chunk: int = 100) -> torch.Tensor:
    """log p(x|z_0) + log (1/K) sum_k p(z_k) / q(z_k|x), z_0, z_k ~ q(z|x), one value per image."""
    q = model.posterior(x)
    decoder_term = model.decoder(q.sample()).log_prob(x).double()
    log_ratios = []
    for start in range(0, samples, chunk):
        z = q.sample((min(chunk, samples - start),))
        log_ratios.append((model.latent.prior_log_prob(z) - q.log_prob(z)).double())
    return decoder_term + torch.logsumexp(torch.cat(log_ratios), dim=0) - math.log(samples)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=sorted(MNIST_TABLE1))
    parser.add_argument("--latents", nargs="+", default=["normal", "vmf"], choices=sorted(FAMILY_INDEX))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="the grid's seeds (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=500, help="importance samples K (default: %(default)s)")
    add_grid_arguments(parser)
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples must be >= 1, got {args.samples}")
    start = time.time()
    metrics, images = {}, None
    for dim, latent, seed in itertools.product(args.dims, args.latents, args.seeds):
        config, model = load_trained(parser, args, latent=latent, dim=dim, seed=seed)
        config = replace(config, ll_samples=args.samples)  # how to evaluate, not what was trained
        images = images if images is not None else load_data(config, data_dir=args.data_dir).test_x
        test_x = binarized_test_set(images, config)  # the binary images `svae mnist` evaluates this seed on
        name = f"{latent}_d{dim}" + (f"_seed{seed}" if seed else "")
        metrics[f"{name}_ll"] = test_log_likelihood(model, test_x, config)
        metrics[f"{name}_reference_estimator"] = test_log_likelihood(model, test_x, config,
                                                                     estimate=reference_estimate)
        paper = MNIST_TABLE1.get(dim, {}).get("ll", (None, None))[FAMILY_INDEX[latent]]
        metrics[f"{name}_paper_ll"] = paper
        print(f"{name:>10}: LL {metrics[f'{name}_ll']:8.2f}, the reference code's estimator "
              f"{metrics[f'{name}_reference_estimator']:8.2f}, paper {paper}")
    if args.json:
        write_record(args.json, command="scripts/reference_ll_estimator.py", config=vars(args), metrics=metrics,
                     wall_time=time.time() - start)


if __name__ == "__main__":
    main()
