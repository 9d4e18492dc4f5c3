"""Run a grid of experiment configurations, one JSON record each, reusing only what it should.

A grid can be interrupted and resumed at any time: a run whose record is present is not trained
again. Which records count is a choice (``reuse``):

* ``"same-code"`` (the default): a record holding exactly the configuration asked for, written
  by the code running now (its ``code_hash``, :func:`svae.records.code_hash`). An interrupted
  grid resumes; a record from another code version, such as the ones committed with svae, is
  trained again.
* ``"any"``: a record holding the configuration, whatever code wrote it.
* ``"none"``: every run is trained again.

Before training, the grid says how many records it reuses and from where, how many runs it
trains and why, and which of the files it will overwrite are tracked by git. Each run is trained
under a lock (``<records>/.locks/<run>.lock``), so two processes on one output directory never
train the same run: the second skips the runs the first holds, trains the others, then waits for
the skipped ones and trains any whose holder died without writing its record.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock, Timeout

from svae.atomic import atomic_write_text
from svae.progress import progress as progress_bar
from svae.records import code_version, config_differences, write_record
from svae.train import NonFiniteLossError

REUSE = ("same-code", "any", "none")


def done_record(path: Path, config) -> dict | None:
    """The record at ``path`` if it holds exactly ``config`` (:func:`svae.records.config_differences`) and
    finite metrics, else None: a record of a diverged run (``"status": "diverged"``, or NaN or infinite
    figures, as JSON allows) is not a result for a table to average or a verdict to compare."""
    try:
        record = json.loads(path.read_text())
        if record.get("status", "done") != "done" or not _finite(record["metrics"]):
            return None
        return record if not config_differences(record["config"], config) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _finite(value) -> bool:
    """Every number in a (nested) JSON value is finite."""
    if isinstance(value, dict):
        return all(map(_finite, value.values()))
    if isinstance(value, list):
        return all(map(_finite, value))
    return not isinstance(value, float) or math.isfinite(value)


def records_present(configs: list, path_of: Callable) -> tuple[list[tuple[object, dict]], int]:
    """(config, record) for every config whose record is done, and how many are not: what a table
    of a possibly incomplete grid is written from. FileNotFoundError when there is none at all."""
    present = [(c, r) for c in configs if (r := done_record(path_of(c), c)) is not None]
    if not present:
        raise FileNotFoundError(f"no record of this grid in {path_of(configs[0]).parent}/ yet")
    return present, len(configs) - len(present)


def tracked_by_git(paths) -> list[Path]:
    """Those of ``paths`` that git tracks in the repository around them (none without git)."""
    tracked = []
    for folder, names in _by_folder(paths).items():
        try:
            out = subprocess.run(["git", "ls-files", "-z", "--", *names], cwd=folder, capture_output=True,
                                 text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0:
            tracked += [folder / name for name in out.stdout.split("\0") if name]
    return tracked


def _by_folder(paths) -> dict[Path, list[str]]:
    folders = {}
    for path in map(Path, paths):
        if path.parent.is_dir():
            folders.setdefault(path.parent, []).append(path.name)
    return folders


def write_table(table, text: str) -> None:
    """Write a grid's table atomically, saying so when git tracks the file it replaces."""
    table = Path(table)
    tracked = tracked_by_git([table])
    atomic_write_text(table, text)
    print(f"table written to {table}" + (" (tracked by git: `git diff` shows what changed)" if tracked else ""))


@dataclass
class Plan:
    """What a grid will do with each configuration, and why."""
    reused: list = field(default_factory=list)
    train: list = field(default_factory=list)
    why: Counter = field(default_factory=Counter)  # reason -> runs to train for it
    other_code: set = field(default_factory=set)  # git SHAs (or hashes) of the records set aside


def plan(configs: list, path_of: Callable, reuse: str = "same-code") -> Plan:
    if reuse not in REUSE:
        raise ValueError(f"reuse must be one of {REUSE}, got {reuse!r}")
    ours = code_version()["code_hash"]
    result = Plan()
    for config in configs:
        path = path_of(config)
        record = done_record(path, config)
        if record is None:
            result.train.append(config)
            result.why["another configuration or a diverged run" if path.exists() else "no record"] += 1
        elif reuse == "any" or (reuse == "same-code" and record.get("code_hash") == ours):
            result.reused.append(config)
        else:
            result.train.append(config)
            result.why["--retrain" if reuse == "none" else "a record from another code version"] += 1
            if reuse == "same-code":
                result.other_code.add((record.get("git_sha") or record.get("code_hash") or "unknown")[:8])
    return result


def describe(grid: Plan, configs: list, path_of: Callable, reuse: str) -> str:
    """The lines a grid prints before it trains: reused, to train and why, files it overwrites."""
    folders = sorted({str(path_of(c).parent) for c in configs})
    where = ", ".join(f"{f}/" for f in folders)
    lines = [f"{len(configs)} runs, records in {where}"]
    if grid.reused:
        whose = "whatever code wrote them (--reuse)" if reuse == "any" else \
            f"written by this code (code_hash {code_version()['code_hash']})"
        lines.append(f"  reusing {len(grid.reused)} records {whose}")
    if grid.train:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(grid.why.items()))
        lines.append(f"  training {len(grid.train)} runs ({reasons})")
    if grid.other_code:
        lines.append(f"  records from other code versions ({', '.join(sorted(grid.other_code))}) are trained "
                     f"again; --reuse keeps them")
    tracked = tracked_by_git(path_of(c) for c in grid.train)
    if tracked:
        lines.append(f"  note: this overwrites {len(tracked)} records tracked by git in {where} "
                     f"(`git diff` shows what changed, `git checkout` restores them; --out writes elsewhere)")
    return "\n".join(lines)


def lock_path(record: Path) -> Path:
    return record.parent / ".locks" / f"{record.stem}.lock"


def _call(task) -> str:
    """Train one run under its lock: "trained", "diverged" (its record says so and why), "done"
    (another process wrote its record while this one waited) or "held" (another process holds it
    and ``wait`` is False)."""
    fn, config, path, threads, started, wait, command = task
    lock_path(path).parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(path))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        return "held"
    try:
        record = done_record(path, config)
        if record is not None and record.get("code_hash") == code_version()["code_hash"] \
                and path.stat().st_mtime >= started:
            return "done"
        torch.set_num_threads(threads)
        validating = torch.distributions.Distribution._validate_args
        torch.distributions.Distribution.set_default_validate_args(False)  # the checks cost time, per step
        try:
            fn(config, path)
        except NonFiniteLossError as error:  # one diverged run must not stop the others
            write_record(path, command=command, config=asdict(config), metrics={}, wall_time=None,
                         status="diverged", error=str(error))
            return "diverged"
        finally:  # with jobs = 1 this runs in the caller's process: leave its default as it was
            torch.distributions.Distribution.set_default_validate_args(validating)
        return "trained"
    finally:
        lock.release()


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one (``taskset``, a
    batch scheduler's cpuset), which ``os.cpu_count()`` ignores."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_grid(configs: list, path_of: Callable, run_one: Callable, *, jobs: int = 1, desc: str = "runs",
             progress: bool = True, reuse: str = "same-code", first: list | None = None,
             command: str = "svae reproduce") -> list[Path]:
    """``run_one(config, path)`` for every config whose record ``path_of(config)`` is not reused.

    ``jobs`` processes share the CPU threads. ``run_one`` must be importable (a module-level
    function). The configs in ``first`` (a subset) are all trained before the others start, e.g.
    those that train a model the others share. A run that diverges (NonFiniteLossError) gets a
    record with ``"status": "diverged"`` and the error, written by ``command``; the others go on,
    and the diverged ones are listed at the end (a table leaves them out; the next call trains them
    again).
    """
    grid = plan(configs, path_of, reuse)
    print(describe(grid, configs, path_of, reuse), flush=True)
    started = time.time()
    threads = max(1, usable_cpus() // jobs)
    first_keys = {id(c) for c in first or []}
    stages = [[c for c in grid.train if id(c) in first_keys], [c for c in grid.train if id(c) not in first_keys]]
    bar = progress_bar(total=len(configs), initial=len(grid.reused), desc=desc, enabled=progress)
    diverged = []

    def run_all(todo: list, wait: bool) -> list:
        tasks = [(run_one, c, path_of(c), threads, started, wait, command) for c in todo]
        if jobs == 1:
            outcomes = map(_call, tasks)
        else:
            pool = ProcessPoolExecutor(jobs, initializer=code_version)  # the code each worker loads
            outcomes = pool.map(_call, tasks)
        held = []
        for config, outcome in zip(todo, outcomes):
            if outcome == "held":
                held.append(config)
            else:
                bar.update()
            if outcome == "diverged":
                diverged.append(path_of(config))
        if jobs > 1:
            pool.shutdown()
        return held

    for stage in stages:
        held = run_all(stage, wait=False)
        if held:
            print(f"{len(held)} runs are being trained by another process (locks in "
                  f"{lock_path(path_of(held[0])).parent}/): waiting for them", flush=True)
            run_all(held, wait=True)
    bar.close()
    if diverged:
        print(f"{len(diverged)} of the runs diverged; their records say where (\"status\": \"diverged\"), the "
              f"table leaves them out: {', '.join(str(p) for p in diverged)}", flush=True)
    return [path_of(c) for c in configs]
