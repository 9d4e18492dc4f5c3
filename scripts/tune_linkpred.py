"""Hyper-parameter search for link prediction on the validation edges only.

    python scripts/tune_linkpred.py --dataset cora --latent vmf --grid '{"lr": [0.01, 0.005], "dropout": [0, 0.1]}' \
        [--seeds 3] [--jobs 2] [--epochs 200] --out runs/tune

Each configuration is trained with several split seeds; it is ranked by its mean validation AUC
(test edges are never looked at). One JSON record per run in --out; a ranking is printed.
"""
import argparse
import itertools
import json
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def _run(args):
    overrides, out = args
    import torch

    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)
    from svae.experiments.linkpred import LinkPredConfig, run
    from svae.records import write_record

    path = Path(out) / ("_".join(f"{k}={v}" for k, v in sorted(overrides.items())) + ".json")
    if path.exists():
        return json.loads(path.read_text())
    record = run(LinkPredConfig(**overrides), progress=False)
    write_record(path, command="scripts/tune_linkpred.py", config=record["config"], metrics=record["metrics"],
                 wall_time=record["wall_time"])
    return json.loads(path.read_text())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--latent", required=True)
    parser.add_argument("--grid", default="{}")
    parser.add_argument("--fixed", default="{}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="runs/tune")
    args = parser.parse_args()
    grid, fixed = json.loads(args.grid), json.loads(args.fixed)
    keys = sorted(grid)
    configs = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    tasks = [({"dataset": args.dataset, "latent": args.latent, "seed": s, **fixed, **c}, args.out)
             for c in configs for s in range(args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        records = list(pool.map(_run, tasks))
    rows = []
    for i, c in enumerate(configs):
        recs = records[i * args.seeds:(i + 1) * args.seeds]
        val = [r["metrics"]["val_auc"] for r in recs]
        rows.append((statistics.mean(val), statistics.mean(r["metrics"]["val_ap"] for r in recs),
                     statistics.mean(r["metrics"]["best_epoch"] for r in recs), c))
    for val, ap, epoch, c in sorted(rows, key=lambda r: -r[0]):
        print(f"val_auc {val:.4f} val_ap {ap:.4f} best_epoch {epoch:6.1f}  {fixed} {c}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
