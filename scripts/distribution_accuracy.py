"""Measured accuracy of VonMisesFisher and PowerSpherical against tests/data/spherical_reference.json.

    python scripts/distribution_accuracy.py [--device cpu] [--json PATH]

For each family, quantity and dtype, the worst error over the table (m from 2 to 4096, kappa
from 0 to 1e8, and separately 1e10 to 1e20), measured as |computed - exact| / max(|exact|, 1):
relative error, and absolute error where the exact value is below 1 in size. The targets: 1e-13
in float64 and 2e-6 in float32 (the float64 value rounded, or 1e-6 absolute near 0). The
figures in docs/numerics.md come from this script; tests/test_numerics_targets.py asserts the targets.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.distributions import kl_divergence

from svae import HypersphericalUniform, PowerSpherical, VonMisesFisher
from svae.records import write_record

TABLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "spherical_reference.json"
FAMILIES = {"vmf": VonMisesFisher, "power_spherical": PowerSpherical}
QUANTITIES = ("entropy", "kl_uniform", "mean_length", "var_radial", "var_tangential",
              "log_prob_at_loc", "log_prob_orthogonal", "log_prob_at_antipode")
TARGETS = {torch.float64: 1e-13, torch.float32: 2e-6}
TARGET_RANGE = 1e8  # the targets cover kappa in [0, 1e8]


def computed(family: str, rows: list[dict], dtype: torch.dtype, device="cpu") -> dict[str, torch.Tensor]:
    """Each quantity at the rows' (m, kappa), in float64 for comparison, from ``dtype`` parameters."""
    out = {q: [] for q in QUANTITIES}
    for row in rows:
        m = row["m"]
        e1, e2 = torch.zeros(m, dtype=dtype, device=device), torch.zeros(m, dtype=dtype, device=device)
        e1[0], e2[1] = 1, 1
        q = FAMILIES[family](e1, torch.tensor(row["kappa"], dtype=dtype, device=device))
        points = q.log_prob(torch.stack([e1, e2, -e1]))
        variance = q.variance
        values = {
            "entropy": q.entropy(), "kl_uniform": kl_divergence(q, HypersphericalUniform(m, dtype=dtype, device=device)),
            "mean_length": q.mean[0], "var_radial": variance[0], "var_tangential": variance[1],
            "log_prob_at_loc": points[0], "log_prob_orthogonal": points[1], "log_prob_at_antipode": points[2],
        }
        for name, value in values.items():
            out[name].append(float(value))
    return {name: torch.tensor(v, dtype=torch.float64) for name, v in out.items()}


def errors(family: str, rows: list[dict], dtype: torch.dtype, device="cpu") -> dict[str, torch.Tensor]:
    """|computed - exact| / max(|exact|, 1) per quantity and row (0 where both are the same infinity)."""
    values = computed(family, rows, dtype, device)
    out = {}
    for name in QUANTITIES:
        exact = torch.tensor([float(row[name]) for row in rows], dtype=torch.float64)
        same = values[name] == exact  # also -inf == -inf (the Power Spherical at its antipode)
        error = (values[name] - exact).abs() / exact.abs().clamp_min(1)
        out[name] = torch.where(same, 0.0, error)
    return out


def reference_rows(family: str) -> list[dict]:
    return [row for row in json.loads(TABLE.read_text())["rows"] if row["family"] == family]


def worst(family: str, dtype: torch.dtype, beyond: bool = False, device="cpu") -> dict[str, tuple[float, int, float]]:
    """Per quantity: (worst error, m, kappa) over kappa <= 1e8 (or above it, with ``beyond``)."""
    rows = [r for r in reference_rows(family) if (r["kappa"] > TARGET_RANGE) == beyond]
    out = {}
    for name, error in errors(family, rows, dtype, device).items():
        i = int(error.nan_to_num(float("inf")).argmax())
        out[name] = (float(error[i]), rows[i]["m"], rows[i]["kappa"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--device", default="cpu", help="where the distributions compute (cpu, cuda)")
    args = parser.parse_args(argv)
    start = time.time()
    metrics, table = {}, []
    for family in FAMILIES:
        for dtype in (torch.float64, torch.float32):
            for beyond in (False, True):
                span = "kappa_1e10_to_1e20" if beyond else "kappa_0_to_1e8"
                for name, (error, m, kappa) in worst(family, dtype, beyond, args.device).items():
                    key = f"{family}_{name}_{str(dtype)[6:]}_{span}"
                    metrics[f"max_error_{key}"] = error
                    table.append({"family": family, "quantity": name, "dtype": str(dtype)[6:], "span": span,
                                  "max_error": error, "at_m": m, "at_kappa": kappa,
                                  "target": TARGETS[dtype] if not beyond else None})
    print(f"{'family':>16} {'quantity':>21} {'dtype':>8} {'kappa <= 1e8':>13} {'(m, kappa)':>18} {'1e10..1e20':>11}")
    for family in FAMILIES:
        for dtype in ("float64", "float32"):
            for name in QUANTITIES:
                near = next(r for r in table if (r["family"], r["dtype"], r["quantity"], r["span"][6]) == (family, dtype, name, "0"))
                far = next(r for r in table if (r["family"], r["dtype"], r["quantity"], r["span"][6]) == (family, dtype, name, "1"))
                flag = "" if near["max_error"] <= near["target"] else "  above target"
                print(f"{family:>16} {name:>21} {dtype:>8} {near['max_error']:>13.2e} "
                      f"{str((near['at_m'], near['at_kappa'])):>18} {far['max_error']:>11.2e}{flag}")
    if args.json:
        write_record(args.json, command="scripts/distribution_accuracy.py", config=vars(args), metrics=metrics,
                     wall_time=time.time() - start, table=table)


if __name__ == "__main__":
    main()
