"""A grid of four quick runs for the tests of svae.experiments.grid: each training is logged (with
its process id) to ``<out>/trainings.log``, so a test can count how often each run was trained.

Run as a script (``python grid_worker.py OUT SECONDS``), it is one of the processes of the
concurrency test: a grid whose runs take ``SECONDS`` each.
"""
import os
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from svae.experiments.grid import run_grid
from svae.records import write_record
from svae.train import NonFiniteLossError

NAMES = ("a", "b", "c", "d")


@dataclass
class Cell:
    name: str
    seconds: float = 0.0
    diverges: bool = False  # training raises NonFiniteLossError, as a run whose loss turned NaN


def record_path(out_dir, cell: Cell) -> Path:
    return Path(out_dir) / f"{cell.name}.json"


def train(cell: Cell, path: Path) -> None:
    with open(Path(path).parent / "trainings.log", "a") as log:  # one short append: atomic
        log.write(f"{cell.name} {os.getpid()}\n")
    time.sleep(cell.seconds)
    if cell.diverges:
        raise NonFiniteLossError(f"non-finite loss (nan) at epoch 3, step 7 of run {cell.name}")
    write_record(path, command="grid test", config=asdict(cell), metrics={"score": 1.0}, wall_time=cell.seconds)


def trainings(out_dir) -> list[str]:
    log = Path(out_dir) / "trainings.log"
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def grid(out_dir, seconds: float = 0.0, **options):
    return run_grid([Cell(name, seconds) for name in NAMES], partial(record_path, out_dir), train, progress=False,
                    **options)


if __name__ == "__main__":
    grid(sys.argv[1], float(sys.argv[2]))
