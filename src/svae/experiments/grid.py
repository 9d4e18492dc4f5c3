"""Run a grid of experiment configurations, one JSON record each, skipping those already done.

A record counts as done when it exists and holds exactly the configuration asked for, so a grid
can be interrupted and resumed at any time, and a changed configuration is run again.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from svae.progress import progress as progress_bar
from svae.records import code_version


def done_record(path: Path, config) -> dict | None:
    """The record at ``path`` if it holds exactly ``config``, else None."""
    try:  # compared as JSON: tuples in the config are lists in the record
        record = json.loads(path.read_text())
        return record if record["config"] == json.loads(json.dumps(asdict(config))) else None
    except (OSError, ValueError, KeyError):
        return None


def is_done(path: Path, config) -> bool:
    return done_record(path, config) is not None


def records_present(configs: list, path_of: Callable) -> tuple[list[tuple[object, dict]], int]:
    """(config, record) for every config whose record is done, and how many are not: what a table
    of a possibly incomplete grid is written from. FileNotFoundError when there is none at all."""
    present = [(c, r) for c in configs if (r := done_record(path_of(c), c)) is not None]
    if not present:
        raise FileNotFoundError(f"no record of this grid in {path_of(configs[0]).parent}/ yet")
    return present, len(configs) - len(present)


def _call(task):
    fn, config, path, threads = task
    torch.set_num_threads(threads)
    torch.distributions.Distribution.set_default_validate_args(False)
    fn(config, path)
    return str(path)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one (``taskset``, a
    batch scheduler's cpuset), which ``os.cpu_count()`` ignores."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_grid(configs: list, path_of: Callable, run_one: Callable, *, jobs: int = 1, desc: str = "runs",
             progress: bool = True) -> list[Path]:
    """``run_one(config, path)`` for every config whose record ``path_of(config)`` is not done.

    ``jobs`` processes share the CPU threads. ``run_one`` must be importable (a module-level function).
    """
    todo = [c for c in configs if not is_done(path_of(c), c)]
    threads = max(1, usable_cpus() // jobs)
    tasks = [(run_one, c, path_of(c), threads) for c in todo]
    bar = progress_bar(total=len(configs), initial=len(configs) - len(todo), desc=desc, enabled=progress)
    if jobs == 1:
        for task in tasks:
            _call(task)
            bar.update()
    else:
        with ProcessPoolExecutor(jobs, initializer=code_version) as pool:  # the code each worker loads
            for _ in pool.map(_call, tasks):
                bar.update()
    bar.close()
    return [path_of(c) for c in configs]
