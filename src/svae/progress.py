"""Progress of loops over epochs or runs: a live bar on a terminal, one line per item elsewhere.

A tqdm bar redraws itself with carriage returns; written to a log file (``make demo > log``, CI,
a batch job) that is thousands of frames. When stderr is not a terminal, :class:`LineProgress`
prints one line per completed item instead, with the figures last given to ``set_postfix``, the
time so far and an estimate of the time left (an upper bound where a loop may stop early).
"""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


def progress(iterable=None, *, desc: str, total: int | None = None, initial: int = 0, enabled: bool = True):
    """A tqdm bar on a terminal, a :class:`LineProgress` otherwise, nothing when not ``enabled``."""
    if not enabled or _on_terminal():
        return tqdm(iterable, desc=desc, total=total, initial=initial, disable=not enabled, leave=False,
                    dynamic_ncols=True)
    return LineProgress(iterable, desc=desc, total=total, initial=initial)


def _on_terminal() -> bool:
    return sys.stderr.isatty()


class LineProgress:
    """The part of tqdm's interface the loops use, writing one line to stderr per completed item."""

    def __init__(self, iterable=None, *, desc: str, total: int | None = None, initial: int = 0):
        self.iterable, self.desc, self.n, self.postfix = iterable, desc, initial, {}
        self.initial, self.started = initial, time.monotonic()
        self.total = total if total is not None else (len(iterable) + initial if hasattr(iterable, "__len__") else None)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()

    def set_postfix(self, values=None, **more) -> None:
        self.postfix = {**(values or {}), **more}

    def update(self, n: int = 1) -> None:
        self.n += n
        figures = ", ".join(f"{key} {value}" for key, value in self.postfix.items())
        total = f"/{self.total}" if self.total is not None else ""
        elapsed = time.monotonic() - self.started
        timing = f"  [{_duration(elapsed)}"
        if self.total is not None and self.n > self.initial:
            timing += f", {_duration(elapsed / (self.n - self.initial) * (self.total - self.n))} left at most"
        print(f"{self.desc}: {self.n}{total}" + (f"  {figures}" if figures else "") + timing + "]",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
