"""How far the importance-sampled test log-likelihood of trained MNIST models is from converged.

    python scripts/ll_convergence.py --latent vmf --dim 40 [--samples 1 50 500 5000] [--images 1000]
        [--profile paper] [--json PATH]

The paper's LL (and `svae mnist`'s) is the importance-sampling bound with 500 samples from the
posterior; it rises towards log p(x) as the number of samples K grows, by less the closer the
posterior is to the true one. This script takes the model that `svae reproduce mnist --profile
PROFILE` trained and saved for (`--latent`, `--dim`) and estimates the bound on the first
`--images` test images, binarised as `svae mnist` binarises them for the model's seed and shared
by every K, so that the differences between the K are the estimator's and not the data's. K = 1 is an unbiased estimate
of the ELBO. It records the mean bound for every K, and the mean and standard error over images of
the gain from each K to the largest.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from trained_mnist import add_model_arguments, load_trained, write_model_record

from svae.experiments.mnist import binarized_test_set, load_data
from svae.nn.objectives import importance_log_likelihood


def per_image_bounds(model, x: torch.Tensor, samples: int, seed: int, batch_size: int = 100) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.cat([importance_log_likelihood(model, x[start:start + batch_size], samples)
                          for start in range(0, len(x), batch_size)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 50, 500, 5000],
                        help="numbers of importance samples K (default: %(default)s)")
    parser.add_argument("--images", type=int, default=1000, help="first test images used (default: %(default)s)")
    args = parser.parse_args(argv)
    if min(args.samples) < 1 or not 2 <= args.images <= 10_000:
        parser.error(f"--samples must be >= 1 and --images in [2, 10000], got {args.samples} and {args.images}")
    start = time.time()
    config, model = load_trained(parser, args)
    x = binarized_test_set(load_data(config, data_dir=args.data_dir).test_x, config)[:args.images]
    samples = sorted(set(args.samples))
    bounds = {k: per_image_bounds(model, x, k, seed=config.seed + k) for k in samples}
    largest = bounds[samples[-1]]
    metrics = {}
    for k in samples:
        gain = (largest - bounds[k]).tolist()
        metrics[f"ll_{k}"] = bounds[k].mean().item()
        metrics[f"gain_{k}_to_{samples[-1]}"] = statistics.mean(gain)
        metrics[f"gain_{k}_to_{samples[-1]}_stderr"] = statistics.stdev(gain) / len(gain) ** 0.5
        print(f"K = {k:>6}: bound {metrics[f'll_{k}']:9.3f}, gain to K = {samples[-1]}: "
              f"{metrics[f'gain_{k}_to_{samples[-1]}']:.3f} ± {metrics[f'gain_{k}_to_{samples[-1]}_stderr']:.3f}")
    write_model_record(args, config, "scripts/ll_convergence.py", metrics, start)


if __name__ == "__main__":
    main()
