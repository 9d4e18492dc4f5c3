"""JSON run records: one per result-producing command, written atomically.

A record holds the command's config, its ``metrics`` (snake_case names), and where it came
from: package versions, git SHA (and whether the package's code differed from it), machine and
wall time. Tables in docs are generated from them.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import MISSING, asdict, fields
from importlib import metadata
from pathlib import Path

import torch

import svae
from svae.atomic import atomic_write_text


_PACKAGE_DIR = Path(__file__).parent


def _git(*args: str) -> str | None:
    """The output of a git command run in the package's directory, or None without git or a repository."""
    try:
        out = subprocess.run(["git", *args], cwd=_PACKAGE_DIR, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_sha() -> str | None:
    return _git("rev-parse", "HEAD") or None


def git_dirty() -> bool | None:
    """Whether the package's tracked files differ from the commit: then the SHA alone does not name
    the code that ran. Only the package itself counts (a run rewrites tracked result files)."""
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return None if status is None else bool(status)


def code_hash() -> str:
    """A hash of the package's source (every ``.py`` and ``.cpp`` file under ``svae/``): two runs
    with one hash ran the same code, with or without git, committed or not. Records carry it so
    that a grid reuses a record only when the code that made it is the code running now."""
    digest = hashlib.sha256()
    for path in sorted(p for p in _PACKAGE_DIR.rglob("*") if p.suffix in (".py", ".cpp")):
        digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def code_version() -> dict:
    """``git_sha``, ``git_dirty`` and :func:`code_hash` of the code this process runs, read once and kept.

    A record must name the commit whose code ran, not the one checked out when it is written: a
    long run outlives commits made while it trains. So entry points call this at start-up (the CLI
    does, and so do grid workers as they start); a process that never did reads it at its first
    record.
    """
    return {"git_sha": git_sha(), "git_dirty": git_dirty(), "code_hash": code_hash()}


def provenance() -> dict:
    """Versions, git SHA and machine: what a number needs to be traced back."""
    versions = {"svae": svae.__version__, "torch": torch.__version__, "python": platform.python_version()}
    for package in ("torch_geometric", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "versions": versions,
        **code_version(),
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads()},
    }


def write_record(path, *, command: str, config: dict, metrics: dict, wall_time: float, **extra) -> Path:
    """Write one JSON record with ``metrics`` and provenance to ``path`` (atomically)."""
    bad = [k for k in metrics if not k.replace("_", "").isalnum() or k != k.lower()]
    if bad:
        raise ValueError(f"metric names must be snake_case, got {bad}")
    record = {"command": command, "config": config, "metrics": metrics, "wall_time": wall_time,
              **extra, **provenance()}
    text = json.dumps(record, indent=2, sort_keys=False) + "\n"
    try:
        return atomic_write_text(path, text)
    except OSError as error:  # never lose a result: keep it where it can be written, and say where
        fallback = Path(tempfile.gettempdir()) / f"svae-unsaved-{time.strftime('%Y%m%d-%H%M%S')}-{Path(path).name or 'record.json'}"
        atomic_write_text(fallback, text)
        print(f"svae: could not write the record to {path} ({error.strerror or error}); it was written to {fallback}",
              file=sys.stderr)
        return fallback


class RecordError(ValueError):
    """A record file that is missing, empty, or not a JSON record of svae's."""


def read_record(path) -> dict:
    """The record at ``path``; RecordError (naming the file and what is wrong) if it is not one."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise RecordError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not text.strip():
        raise RecordError(f"{path}: the file is empty, not a JSON record")
    try:
        record = json.loads(text)
    except ValueError as error:
        raise RecordError(f"{path}: not valid JSON ({error}); was it cut short?") from None
    if not isinstance(record, dict) or "metrics" not in record:
        raise RecordError(f"{path}: JSON, but not a record written by svae (no 'metrics')")
    return record


def config_differences(saved: dict, config, ignore=()) -> list[tuple[str, object, object]]:
    """(field, saved value, value in ``config``) for each field in which a configuration saved in a
    record or checkpoint differs from the dataclass ``config``, compared as JSON (tuples are lists
    there). A field the saved one lacks counts as its default: it was added to the code after the
    file was written, with the default that keeps the earlier behaviour (``spheres = 1``)."""
    def plain(value):
        return json.loads(json.dumps(value))

    wanted = plain(asdict(config))
    defaults = {f.name: f.default for f in fields(config) if f.default is not MISSING}
    saved = {**plain({k: v for k, v in defaults.items() if k not in saved}), **plain(saved)}
    return [(k, saved.get(k), wanted.get(k)) for k in sorted(wanted.keys() | saved.keys())
            if k not in ignore and saved.get(k) != wanted.get(k)]
