"""log_ive throughput against scipy.special.ive on the same inputs, side by side in one process.

    python benchmarks/special.py [--repeats 15] [--json PATH]

scipy computes ive in float64 on the CPU (log taken afterwards, underflowing to -inf for large
orders); svae computes log_ive in pure torch, forward alone and forward + backward.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import special

from benchmarks_common import median_time
from svae.records import write_record
from svae.special import log_ive


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args(argv)
    start = time.time()
    rng = np.random.default_rng(0)
    metrics = {}
    print(f"median of {args.repeats} runs, million evaluations per second")
    print(f"{'orders':>12} {'n':>8} {'scipy ive':>10} {'svae f64':>10} {'svae f32':>10} {'svae f64+bw':>12}")
    for orders, v_np in (("v = 4.5", lambda n: np.full(n, 4.5)), ("v in [0,5e3]", lambda n: rng.integers(0, 10000, n) / 2)):
        for n in (1_000, 100_000, 1_000_000):
            v, x = v_np(n), 10 ** rng.uniform(-3, 4, n)
            vt, xt = torch.from_numpy(v), torch.from_numpy(x)
            xg = xt.clone().requires_grad_()

            def forward_backward():
                log_ive(vt, xg).sum().backward()

            times = {
                "scipy_ive": median_time(lambda: np.log(special.ive(v, x)), args.repeats),
                "svae_f64": median_time(lambda: log_ive(vt, xt), args.repeats),
                "svae_f32": median_time(lambda: log_ive(vt.float(), xt.float()), args.repeats),
                "svae_f64_backward": median_time(forward_backward, args.repeats),
            }
            rates = {k: n / t / 1e6 for k, t in times.items()}
            print(f"{orders:>12} {n:>8} " + " ".join(f"{r:>10.2f}" for r in rates.values()))
            tag = "v4p5" if orders == "v = 4.5" else "vmixed"
            for k, r in rates.items():
                metrics[f"{k}_meval_per_s_{tag}_n{n}"] = r
    if args.json:
        write_record(args.json, command="benchmarks/special.py", config=vars(args), metrics=metrics,
                     wall_time=time.time() - start)
    return metrics


if __name__ == "__main__":
    main()
