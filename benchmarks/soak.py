"""Soak test of the spherical distributions: many draws over every regime, counting bad values.

    python benchmarks/soak.py [--draws 1e9] [--device cpu|cuda] [--json benchmarks/results/soak.json]

Draws from VonMisesFisher, PowerSpherical, SphericalCauchy and HypersphericalUniform over a grid of cells:
ambient dimension m from 2 to 4096 (2, 3, 4, odd and even), concentration 0 and every decade
from 1e-8 to 1e8 (the rows of a cell take each in turn, log-uniform within the decade), float32
and float64 (the Spherical Cauchy's rho is kappa / (1 + kappa), at most 1 - eps of the dtype), the
compiled CPU loops and the torch code (on CUDA: the torch code; the Spherical Cauchy has no
compiled loop), and mean
directions random (one per row) or at +e1 and -e1. Every row differentiates a loss built from the sample, log_prob, entropy, the KL to the
uniform and (vMF) the rejection weight with respect to loc and concentration, and counts:

- non-finite samples, samples off the sphere (| |z| - 1 | > 8 sqrt(m) eps of the dtype),
- non-finite log_prob, rejection_log_weight, entropy and KL, and negative KL values,
- non-finite gradients with respect to loc and concentration.

``--draws`` is the total number of samples; each cell gets a share that falls with m (a cell
costs about m times its draws). Every count must be 0: the exit status is 1 otherwise. The
record is written atomically after every dimension, with ``"status": "running"``, and a rerun
with the same arguments resumes from it; ``make test`` runs the same code with 1e7 draws.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path

import torch
from torch.distributions import kl_divergence

from svae import HypersphericalUniform, PowerSpherical, SphericalCauchy, VonMisesFisher, native
from svae.records import read_record, write_record

DIMENSIONS = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 32, 33, 64, 65, 100, 101, 128, 255, 256, 512,
              1000, 1001, 2048, 4095, 4096]
DECADES = list(range(-8, 8))  # kappa in [10^d, 10^(d+1)]: the last one ends at 1e8
FAMILIES = {"vmf": VonMisesFisher, "power": PowerSpherical, "cauchy": SphericalCauchy}
WITHOUT_LOOPS = {"cauchy"}  # families with no compiled CPU loop: one path
DTYPES = {"float32": torch.float32, "float64": torch.float64}
LOCS = ("random", "+e1", "-e1")
PATHS = {"cpu": ("compiled", "torch"), "cuda": ("torch",)}  # the compiled loops are for CPU tensors
COUNTS = ("draws", "nonfinite_sample", "off_sphere", "nonfinite_log_prob", "nonfinite_rejection_log_weight",
          "nonfinite_entropy", "nonfinite_kl", "negative_kl", "nonfinite_grad_loc", "nonfinite_grad_concentration")
CHUNK_ELEMENTS = {"cpu": 1 << 21, "cuda": 1 << 25}  # rows of one chunk times m


def sphere_tolerance(m: int, dtype: torch.dtype) -> float:
    """How far | |z| - 1 | may be from 0: each coordinate is rounded once (eps/2 relative) and the
    norm's sum of m squares adds about sqrt(m) eps/2; 8 sqrt(m) eps bounds both with room."""
    return 8 * math.sqrt(m) * torch.finfo(dtype).eps


def cell_draws(total: float, m: int, device: str) -> int:
    """Draws of one cell: a share of ``total`` proportional to min(1, 16 / m), so that the small
    dimensions, where samples are cheap, take most of the draws."""
    weights = {d: min(1.0, 16 / d) for d in DIMENSIONS}
    cells_per_dimension = len(list(cells(m, device)))
    return max(len(DECADES) + 1, int(total * weights[m] / (sum(weights.values()) * cells_per_dimension)))


def parameters(n: int, m: int, dtype, loc_mode: str, generator: torch.Generator):
    device = generator.device
    """Leaf tensors (loc (n, m), concentration (n,)) for one chunk of a cell: rows take kappa = 0
    and each decade of DECADES in turn, log-uniform within the decade."""
    if loc_mode == "random":
        loc = torch.nn.functional.normalize(torch.randn(n, m, dtype=dtype, device=device, generator=generator), dim=-1)
    else:
        loc = torch.zeros(n, m, dtype=dtype, device=device)
        loc[:, 0] = 1.0 if loc_mode == "+e1" else -1.0
    decade = torch.arange(n, device=device) % (len(DECADES) + 1)  # 0: kappa = 0, k: DECADES[k - 1]
    exponent = DECADES[0] - 1 + decade + torch.rand(n, dtype=torch.float64, device=device, generator=generator)
    kappa = torch.where(decade == 0, 0.0, torch.pow(10.0, exponent)).to(dtype)
    return loc.requires_grad_(), kappa.requires_grad_()


def bad_rows(t: torch.Tensor) -> torch.Tensor:
    """Rows (leading dimension) with a non-finite entry."""
    bad = ~torch.isfinite(t)
    return bad.reshape(bad.shape[0], -1).any(-1)


def soak_chunk(family: str, m: int, dtype, loc_mode: str, n: int, generator) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """(counts, bad, kappa): the counts of one chunk, which rows had a bad value, their kappa."""
    loc, kappa = parameters(n, m, dtype, loc_mode, generator)
    concentration = kappa
    if family == "cauchy":  # rho = kappa / (1 + kappa) in [0, 1 - eps]: 1 - rho from kappa's decades
        one_minus_rho = (1 / (1 + kappa.detach().double())).clamp(min=torch.finfo(dtype).eps)
        concentration = (1 - one_minus_rho).to(dtype).requires_grad_()
    q = FAMILIES[family](loc, concentration, validate_args=False)
    prior = HypersphericalUniform(m, dtype=dtype, device=loc.device)
    z = q.rsample()
    log_prob, entropy, kl = q.log_prob(z), q.entropy(), kl_divergence(q, prior)
    loss = (z * torch.randn(z.shape, dtype=dtype, device=z.device, generator=generator)).sum() + log_prob.sum() + entropy.sum() + kl.sum()
    masks = {}
    if family == "vmf":
        weight = q.rejection_log_weight(z.detach())
        masks["nonfinite_rejection_log_weight"] = bad_rows(weight)
        loss = loss + weight.sum()
    grad_loc, grad_kappa = torch.autograd.grad(loss, (loc, concentration))
    norm_error = (torch.linalg.vector_norm(z.detach(), dim=-1) - 1).abs()
    masks.update(
        nonfinite_sample=bad_rows(z), off_sphere=norm_error > sphere_tolerance(m, dtype),
        nonfinite_log_prob=bad_rows(log_prob), nonfinite_entropy=bad_rows(entropy), nonfinite_kl=bad_rows(kl),
        negative_kl=kl < 0, nonfinite_grad_loc=bad_rows(grad_loc), nonfinite_grad_concentration=bad_rows(grad_kappa),
    )
    return _counts(n, masks), kappa.detach()


def soak_uniform_chunk(m: int, dtype, n: int, device) -> tuple[dict, torch.Tensor]:
    prior = HypersphericalUniform(m, dtype=dtype, device=device)
    z = prior.rsample((n,))
    norm_error = (torch.linalg.vector_norm(z, dim=-1) - 1).abs()
    masks = {"nonfinite_sample": bad_rows(z), "off_sphere": norm_error > sphere_tolerance(m, dtype),
             "nonfinite_log_prob": bad_rows(prior.log_prob(z))}
    return _counts(n, masks), torch.zeros(n, dtype=dtype, device=device)


def _counts(n: int, masks: dict) -> tuple[dict, torch.Tensor]:
    counts = dict.fromkeys(COUNTS, 0)
    counts["draws"] = n
    for key, mask in masks.items():
        counts[key] = int(mask.sum())
    counts["_bad"] = torch.stack(list(masks.values())).any(0)
    return counts


def cells(m: int, device: str):
    """(name, family, dtype name, path, loc mode) of every cell of dimension m."""
    for dtype in DTYPES:
        yield f"uniform/m{m}/{dtype}", "uniform", dtype, "torch", None
        for family in FAMILIES:
            for path in PATHS[device][-1:] if family in WITHOUT_LOOPS else PATHS[device]:
                for loc_mode in LOCS:
                    yield f"{family}/m{m}/{dtype}/{path}/{loc_mode}", family, dtype, path, loc_mode


def soak_cell(cell, m: int, draws: int, seed: int, device: str = "cpu") -> dict:
    """The counts of one cell, and the concentrations of its first bad rows (``bad_kappa``)."""
    name, family, dtype_name, path, loc_mode = cell
    dtype = DTYPES[dtype_name]
    generator = torch.Generator(device).manual_seed(seed)
    torch.manual_seed(seed)
    total, bad_kappa = dict.fromkeys(COUNTS, 0), []
    chunk = max(len(DECADES) + 1, CHUNK_ELEMENTS[torch.device(device).type] // m)
    with native.disabled() if path == "torch" else contextlib.nullcontext():
        for start in range(0, draws, chunk):
            n = min(chunk, draws - start)
            if family == "uniform":
                counts, kappa = soak_uniform_chunk(m, dtype, n, device)
            else:
                counts, kappa = soak_chunk(family, m, dtype, loc_mode, n, generator)
            bad_kappa += kappa[counts.pop("_bad")][:8 - len(bad_kappa)].tolist()
            for key, value in counts.items():
                total[key] += value
    return {**total, "bad_kappa": bad_kappa}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=float, default=1e9, help="total number of samples (default 1e9)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=sorted(PATHS), default="cpu",
                        help="cpu (compiled loops and torch code) or cuda (the torch code)")
    parser.add_argument("--json", type=str, default=None, help="write the record here (and resume from it)")
    args = parser.parse_args(argv)
    if not args.draws >= 1:
        parser.error(f"--draws must be a number >= 1, got {args.draws}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    config = {"draws": args.draws, "seed": args.seed, "device": args.device}
    start = time.time()
    done, failures, previous_time = {}, [], 0.0
    if args.json and Path(args.json).exists():
        record = read_record(args.json)
        if record.get("status") == "running" and record.get("config") == config:
            done, failures, previous_time = record["dimensions"], record["failures"], record["wall_time"]
            print(f"resuming from {args.json}: dimensions {sorted(map(int, done))} done", flush=True)
    for m in DIMENSIONS:
        if str(m) in done:
            continue
        draws = cell_draws(args.draws, m, args.device)
        totals = dict.fromkeys(COUNTS, 0)
        for index, cell in enumerate(cells(m, args.device)):
            counts = soak_cell(cell, m, draws, seed=args.seed * 1_000_003 + m * 1009 + index, device=args.device)
            bad_kappa = counts.pop("bad_kappa")
            if any(value for key, value in counts.items() if key != "draws"):
                failures.append({"cell": cell[0], **counts, "bad_kappa": bad_kappa})
                print(f"FAILED {cell[0]}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
                      + f"; kappa of the first bad rows {bad_kappa}", flush=True)
            for key, value in counts.items():
                totals[key] += value
        done[str(m)] = totals
        print(f"m = {m:>4}: {totals['draws']:>11,} draws, bad values "
              f"{sum(v for k, v in totals.items() if k != 'draws')}  ({time.time() - start:.0f} s)", flush=True)
        if args.json:
            _write(args.json, config, done, failures, previous_time + time.time() - start, "running", args.device)
    metrics = {key: sum(totals[key] for totals in done.values()) for key in COUNTS}
    bad = sum(v for k, v in metrics.items() if k != "draws")
    print(f"{metrics['draws']:,} draws in {previous_time + time.time() - start:.0f} s: "
          + ("no bad value" if bad == 0 else f"{bad} bad values in {len(failures)} cells"))
    if args.json:
        _write(args.json, config, done, failures, previous_time + time.time() - start, "complete", args.device)
    return 1 if bad else 0


def _write(path, config, done, failures, wall_time, status, device):
    metrics = {key: sum(totals[key] for totals in done.values()) for key in COUNTS}
    write_record(path, command="benchmarks/soak.py", config=config, metrics=metrics, wall_time=wall_time,
                 status=status, grid={"dimensions": DIMENSIONS, "kappa_decades": DECADES, "dtypes": list(DTYPES),
                                      "paths": list(PATHS[device]), "locs": list(LOCS)},
                 dimensions=done, failures=failures)


if __name__ == "__main__":
    sys.exit(main())
