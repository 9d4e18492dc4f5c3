"""The ``svae`` command line: one subcommand per experiment, shared conventions for all.

Every command that produces results accepts ``--json PATH`` (one JSON record, figures under
``metrics``) and every command that reads data accepts ``--data-dir`` (else ``SVAE_DATA_DIR``,
else a per-user cache).
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

import svae
from svae.data.store import resolve_data_dir
from svae.records import provenance


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None,
                        help="data directory (default: $SVAE_DATA_DIR, else ~/.cache/svae)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", default=None, metavar="PATH", help="write one JSON record of the run here")


def _info(args) -> int:
    info = provenance()
    info["data_dir"] = str(resolve_data_dir(args.data_dir))
    info["devices"] = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(json.dumps(info, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svae", description="Hyperspherical latent-variable models.")
    parser.add_argument("--version", action="version", version=f"svae {svae.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="versions, devices and the data directory in use")
    add_data_dir(info)
    info.set_defaults(run=_info)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
