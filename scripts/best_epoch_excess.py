"""How far each run's best validation ELBO lies above the epochs around it.

    python scripts/best_epoch_excess.py RECORD.json [RECORD.json ...] [--window 5] [--json PATH]

Early stopping keeps the epoch with the highest validation ELBO and stops `patience` epochs later
if none beats it. When the epoch-to-epoch changes of that score are noise as large as what an epoch
gains, the highest score is a lucky one: it lies above the trend, and the run stops while the model
still improves. For every record of `svae mnist` (or of the grid) this script reports the best
epoch's score minus the mean score of the `--window` epochs on either side of it (fewer at the ends
of a run). A run that stops on its trend gives an excess near 0; a lucky one a clearly positive one.
"""
from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

from svae.records import read_record, write_record


def best_epoch_excess(history: list[dict], best_epoch: int, window: int) -> float:
    """val_elbo at ``best_epoch`` minus the mean of its neighbours within ``window`` epochs."""
    scores = {row["epoch"]: row["val_elbo"] for row in history}
    neighbours = [scores[e] for e in range(best_epoch - window, best_epoch + window + 1)
                  if e != best_epoch and e in scores]
    return scores[best_epoch] - statistics.mean(neighbours)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", type=Path, help="JSON records of `svae mnist` runs")
    parser.add_argument("--window", type=int, default=5, help="epochs on either side (default: %(default)s)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error(f"--window must be >= 1, got {args.window}")
    start = time.time()
    metrics = {}
    for path in args.records:
        record = read_record(path)
        best = record["metrics"]["best_epoch"]
        excess = best_epoch_excess(record["history"], best, args.window)
        # Runs of one seed and size recur in several folders, and grids share their profile folder's
        # name (results/mnist/paper, results/mnist_v2/paper): a key names the two folders above it.
        name = re.sub(r"[^a-z0-9_]", "_", f"{path.parent.parent.name}_{path.parent.name}_{path.stem}".lower())
        if f"{name}_excess" in metrics:
            parser.error(f"two records would share the key {name}_excess: {path} and one given before it")
        metrics[f"{name}_excess"] = excess
        print(f"{name:>40}: best epoch {best:4d} of {len(record['history']):4d}, "
              f"{excess:+.3f} nats above its neighbours")
    if args.json:
        config = {"records": [str(p) for p in args.records], "window": args.window}
        path = write_record(args.json, command="scripts/best_epoch_excess.py", config=config, metrics=metrics,
                            wall_time=time.time() - start)
        print(f"record written to {path}")


if __name__ == "__main__":
    main()
