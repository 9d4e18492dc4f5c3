"""What the scripts that study one trained MNIST model share: their arguments, loading the model
that `svae reproduce mnist` trained (or a usage error naming the command that trains it), and the
record that names it."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from svae.experiments.mnist import PROFILES, MnistConfig, model_path, trained_model
from svae.nn.latent import FAMILIES
from svae.records import code_version, write_record


def add_model_arguments(parser, *, latent: bool = True) -> None:
    """``--latent`` (unless the script studies one family), ``--dim``, and the grid's arguments."""
    if latent:
        parser.add_argument("--latent", required=True, choices=list(FAMILIES))
    parser.add_argument("--dim", type=int, required=True)
    add_grid_arguments(parser)


def add_grid_arguments(parser) -> None:
    """``--profile``, ``--models``, ``--data-dir`` and ``--json``: where the grid's models are, and
    where the record goes."""
    parser.add_argument("--profile", default="paper", choices=sorted(PROFILES))
    parser.add_argument("--models", default="results/mnist", help="the grid's output folder (default: %(default)s)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None)


def load_trained(parser, args, *, latent: str | None = None, dim: int | None = None, seed: int = 0):
    """``(config, model)`` for the arguments (``latent`` and ``dim``, when given, instead of
    ``--latent`` and ``--dim``), the model in eval mode; exits with a usage error if the grid has
    not trained it. Also pins the commit the record will name: the one this run started from, not
    the one checked out when it ends."""
    code_version()
    torch.distributions.Distribution.set_default_validate_args(False)
    config = MnistConfig(latent=latent or args.latent, dim=dim or args.dim, seed=seed, **PROFILES[args.profile])
    try:
        return config, trained_model(config, args.profile, args.models)
    except FileNotFoundError as error:
        parser.error(str(error))


def write_model_record(args, config: MnistConfig, script: str, metrics: dict, start: float) -> None:
    """The run's record at ``--json``, if given, naming the model file it studied."""
    if args.json:
        write_record(args.json, command=script, config=vars(args), metrics=metrics, wall_time=time.time() - start,
                     model=str(model_path(Path(args.models) / args.profile, config)))
