"""Sampling speed, side by side in one process: rsample + backward per distribution.

    python benchmarks/sampling.py [--repeats 15] [--json PATH]

Compares this library's VonMisesFisher and PowerSpherical with the `power-spherical` package
from PyPI (De Cao's reference implementation) and scipy.stats.vonmises_fisher (sampling only,
no gradients; scipy takes one concentration per call, so it gets its best case: the whole batch
at kappa = 10). Concentrations are spread log-uniformly over [1, 100]. Prints the median time of
repeated runs and the ratio to power-spherical, the target being vMF <= 1.5x at m = 10, batch 4096.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks_common import median_time
from svae import PowerSpherical, VonMisesFisher
from svae.records import write_record


def torch_case(make, m: int, batch: int):
    raw = torch.randn(batch, m, requires_grad=True)
    kappa = torch.logspace(0, 2, batch)[torch.randperm(batch)].requires_grad_()
    weights = torch.randn(batch, m)

    def run():
        q = make(torch.nn.functional.normalize(raw, dim=-1), kappa)
        (q.rsample() * weights).sum().backward()

    return run


def pypi_power_spherical(loc, kappa):
    import power_spherical

    return power_spherical.PowerSpherical(loc, kappa)


def scipy_case(m: int, batch: int):
    from scipy.stats import vonmises_fisher

    mu = np.zeros(m)
    mu[0] = 1.0
    dist = vonmises_fisher(mu, 10.0)
    rng = np.random.default_rng(0)
    return lambda: dist.rvs(batch, random_state=rng)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", type=str, default=None, help="write a JSON record here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    start = time.time()
    rows, metrics = [], {}
    header = f"{'m':>4} {'batch':>6} {'svae vMF':>10} {'svae PS':>10} {'PyPI PS':>10} {'scipy vMF':>10} {'vMF/PyPI PS':>12}"
    print(f"median of {args.repeats} runs, milliseconds (rsample + backward; scipy: sampling only)")
    print(header)
    for m in (3, 10, 64, 512):
        for batch in (256, 4096):
            t = {
                "svae_vmf": median_time(torch_case(VonMisesFisher, m, batch), args.repeats),
                "svae_power_spherical": median_time(torch_case(PowerSpherical, m, batch), args.repeats),
                "pypi_power_spherical": median_time(torch_case(pypi_power_spherical, m, batch), args.repeats),
                "scipy_vmf": median_time(scipy_case(m, batch), args.repeats),
            }
            ratio = t["svae_vmf"] / t["pypi_power_spherical"]
            print(f"{m:>4} {batch:>6} " + " ".join(f"{1e3 * v:>10.3f}" for v in t.values()) + f" {ratio:>12.2f}")
            for name, value in t.items():
                metrics[f"{name}_ms_m{m}_b{batch}"] = 1e3 * value
            metrics[f"vmf_over_pypi_ps_m{m}_b{batch}"] = ratio
            rows.append({"m": m, "batch": batch, **t})
    target = metrics["vmf_over_pypi_ps_m10_b4096"]
    print(f"target: vMF rsample+backward at m=10, batch 4096 within 1.5x of PyPI power-spherical: {target:.2f}x "
          f"({'met' if target <= 1.5 else 'NOT met'})")
    if args.json:
        write_record(args.json, command="benchmarks/sampling.py", config=vars(args), metrics=metrics,
                     wall_time=time.time() - start, rows=rows)
    return metrics


if __name__ == "__main__":
    main()
