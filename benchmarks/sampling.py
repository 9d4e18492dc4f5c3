"""Sampling speed, side by side in one process: rsample + backward per distribution.

    python benchmarks/sampling.py [--repeats 15] [--device cpu|cuda] [--json PATH]

Compares this library's VonMisesFisher and PowerSpherical with the `power-spherical` package
from PyPI (De Cao's reference implementation) and scipy.stats.vonmises_fisher (sampling only,
no gradients; scipy takes one concentration per call, so it gets its best case: the whole batch
at kappa = 10). Concentrations are spread log-uniformly over [1, 100]. Prints the median time of
repeated runs and the ratio to power-spherical, the target being vMF <= 1.5x at m = 10, batch 4096.

On a GPU (``--device cuda``, issue 8) the batches go up to 1 048 576, scipy (CPU only) is left out,
and each case is also timed against a device-to-device copy of a tensor the size of the sample,
the memory-bound limit. Targets there: vMF <= 0.7x PyPI power-spherical at m = 10, batch 65 536,
and within 3x of the copy at batch 1 048 576.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks_common import median_time
from svae import PowerSpherical, VonMisesFisher
from svae.records import write_record


def torch_case(make, m: int, batch: int, device: torch.device):
    raw = torch.randn(batch, m, device=device, requires_grad=True)
    kappa = torch.logspace(0, 2, batch, device=device)[torch.randperm(batch, device=device)].requires_grad_()
    weights = torch.randn(batch, m, device=device)

    def run():
        q = make(torch.nn.functional.normalize(raw, dim=-1), kappa)
        (q.rsample() * weights).sum().backward()

    return run


def copy_case(m: int, batch: int, device: torch.device):
    """A device-to-device copy of a (batch, m) tensor: what writing the sample alone costs."""
    source, target = torch.randn(batch, m, device=device), torch.empty(batch, m, device=device)
    return lambda: target.copy_(source)


def synchronised(run, device: torch.device):
    """``run`` followed by waiting for the device, so that a timer measures the work itself."""
    if device.type != "cuda":
        return run
    return lambda: (run(), torch.cuda.synchronize())


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
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", type=str, default=None, help="write a JSON record here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if gpu:  # argument checks read values back: on a GPU they would time the synchronisation
        torch.distributions.Distribution.set_default_validate_args(False)
    torch.manual_seed(0)
    start = time.time()
    rows, metrics = [], {}
    baseline = "copy" if gpu else "scipy vMF"
    header = f"{'m':>4} {'batch':>8} {'svae vMF':>10} {'svae PS':>10} {'PyPI PS':>10} {baseline:>10} {'vMF/PyPI PS':>12}"
    print(f"median of {args.repeats} runs, milliseconds (rsample + backward; {'copy: the sample-sized copy' if gpu else 'scipy: sampling only'})")
    print(header)
    for m in (3, 10, 64, 512):
        for batch in (256, 4096, 65536, 1048576) if gpu else (256, 4096):
            cases = {
                "svae_vmf": torch_case(VonMisesFisher, m, batch, device),
                "svae_power_spherical": torch_case(PowerSpherical, m, batch, device),
                "pypi_power_spherical": torch_case(pypi_power_spherical, m, batch, device),
                **({"copy": copy_case(m, batch, device)} if gpu else {"scipy_vmf": scipy_case(m, batch)}),
            }
            t = {name: median_time(synchronised(run, device), args.repeats) for name, run in cases.items()}
            ratio = t["svae_vmf"] / t["pypi_power_spherical"]
            print(f"{m:>4} {batch:>8} " + " ".join(f"{1e3 * v:>10.3f}" for v in t.values()) + f" {ratio:>12.2f}")
            for name, value in t.items():
                metrics[f"{name}_ms_m{m}_b{batch}"] = 1e3 * value
            metrics[f"vmf_over_pypi_ps_m{m}_b{batch}"] = ratio
            if gpu:
                metrics[f"vmf_over_copy_m{m}_b{batch}"] = t["svae_vmf"] / t["copy"]
            rows.append({"m": m, "batch": batch, **t})
    if gpu:
        speed, bound = metrics["vmf_over_pypi_ps_m10_b65536"], metrics["vmf_over_copy_m10_b1048576"]
        print(f"targets: vMF at m=10, batch 65536 <= 0.7x PyPI power-spherical: {speed:.2f}x "
              f"({'met' if speed <= 0.7 else 'NOT met'}); at batch 1048576 within 3x of the copy: {bound:.2f}x "
              f"({'met' if bound <= 3 else 'NOT met'})")
    else:
        target = metrics["vmf_over_pypi_ps_m10_b4096"]
        print(f"target: vMF rsample+backward at m=10, batch 4096 within 1.5x of PyPI power-spherical: {target:.2f}x "
              f"({'met' if target <= 1.5 else 'NOT met'})")
    if args.json:
        write_record(args.json, command="benchmarks/sampling.py", config=vars(args), metrics=metrics,
                     wall_time=time.time() - start, rows=rows)
    return metrics


if __name__ == "__main__":
    main()
