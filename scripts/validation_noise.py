"""How noisy the validation ELBO that early stopping compares is, and how much of that noise
validating every epoch with the same random numbers removes.

    python scripts/validation_noise.py --latent vmf --dim 40 [--seeds 8] [--lr 1e-4]
        [--profile paper] [--json PATH]

`svae.train.fit` keeps the epoch with the best validation ELBO and stops after `patience` epochs
without a better one. That ELBO is a one-sample estimate on the 10 000 validation images,
binarised afresh, so it carries noise of its own. This script takes the model that `svae
reproduce mnist --profile PROFILE` trained for (`--latent`, `--dim`) and measures:

- the standard deviation of its validation ELBO over `--seeds` seeds: the noise of one epoch's score;
- the model after one more epoch of training (`svae.train.fit`, Adam at `--lr`, a fresh optimiser):
  the mean gain of that epoch, and the standard deviation over seeds of the difference between
  the two models' scores, once with the same seed for both (common random numbers, as `fit`
  validates every epoch) and once with different seeds (as `fit` did before).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

from trained_mnist import add_model_arguments, load_trained, write_model_record

from svae.data.mnist import binarize
from svae.experiments.mnist import load_data
from svae.train import TrainConfig, evaluate, fit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--seeds", type=int, default=8, help="evaluation seeds (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-4, help="learning rate of the extra epoch (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.seeds < 3 or not args.lr > 0:  # two seeds would pair each score with the other twice
        parser.error(f"--seeds must be >= 3 and --lr > 0, got {args.seeds} and {args.lr}")
    start = time.time()
    config, model = load_trained(parser, args)
    data = load_data(config, data_dir=args.data_dir)
    later = copy.deepcopy(model)
    # the extra epoch shuffles and samples with another seed than the training run's epochs did
    fit(later, data.train_x, data.val_x, TrainConfig(epochs=1, lr=args.lr, seed=config.seed + 1),
        transform=binarize, progress=False)
    seeds = range(args.seeds)
    before = [evaluate(model, data.val_x, transform=binarize, seed=s)["elbo"] for s in seeds]
    after = [evaluate(later, data.val_x, transform=binarize, seed=s)["elbo"] for s in seeds]
    common = [a - b for a, b in zip(after, before)]
    independent = [after[s] - before[(s + 1) % args.seeds] for s in seeds]
    metrics = {
        "val_elbo": statistics.mean(before),
        "val_elbo_std": statistics.stdev(before),
        "epoch_gain": statistics.mean(common),
        "difference_std_common_seed": statistics.stdev(common),
        "difference_std_independent_seeds": statistics.stdev(independent),
    }
    for key, value in metrics.items():
        print(f"{key:>34}: {value:9.3f}")
    write_model_record(args, config, "scripts/validation_noise.py", metrics, start)


if __name__ == "__main__":
    main()
