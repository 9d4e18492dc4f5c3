"""Measured accuracy of svae.special against tests/data/bessel_reference.json.

    python scripts/accuracy_report.py [--json PATH]

Prints the worst relative error (log_ive: relative to max(1, |log_ive|)) per function, input
dtype and computation dtype (float64 everywhere, float32 on devices without float64), and for
float64 computations per path: the compiled CPU loop (svae.native, the default on the CPU) and
the torch code (every other device).
"""
import argparse
import contextlib
import json
import time
from pathlib import Path

import torch

from svae import native
from svae.records import write_record
from svae.special import _apply

TABLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "bessel_reference.json"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    start = time.time()
    rows = json.loads(TABLE.read_text())["rows"]
    v = torch.tensor([r["v"] for r in rows], dtype=torch.float64)
    x = torch.tensor([r["x"] for r in rows], dtype=torch.float64)
    ref = {k: torch.tensor([float(r[k]) for r in rows], dtype=torch.float64)
           for k in ("log_ive", "iv_ratio", "iv_ratio_complement")}
    ge1 = v >= 1
    metrics = {}
    print(f"{len(rows)} points, v in [{v.min():g}, {v.max():g}], x in [{x.min():.3g}, {x.max():.3g}]")
    print(f"{'input':>8} {'computed in':>12} {'path':>9} {'log_ive':>10} {'iv_ratio':>10} {'1 - ratio':>10}")
    cases = [(dtype, torch.float64, path) for dtype in (torch.float64, torch.float32) for path in ("compiled", "torch")]
    cases += [(dtype, torch.float32, "torch") for dtype in (torch.float64, torch.float32)]
    for dtype, compute, path in cases:
        with native.disabled() if path == "torch" else contextlib.nullcontext():
            log_ive = _apply(v.to(dtype), x.to(dtype), compute)[0].double()
            ratio, complement = (t.double() for t in _apply((v - 1)[ge1].to(dtype), x[ge1].to(dtype), compute)[2:])
            errors = {
                "log_ive": ((log_ive - ref["log_ive"]).abs() / ref["log_ive"].abs().clamp_min(1)).max(),
                "iv_ratio": ((ratio - ref["iv_ratio"][ge1]) / ref["iv_ratio"][ge1]).abs().max(),
                "complement": ((complement - ref["iv_ratio_complement"][ge1]) / ref["iv_ratio_complement"][ge1]).abs().max(),
            }
            name = f"{str(dtype)[6:]}_in_{str(compute)[6:]}" + ("_compiled" if path == "compiled" else "")
            print(f"{str(dtype)[6:]:>8} {str(compute)[6:]:>12} {path:>9} "
                  + " ".join(f"{float(e):>10.2e}" for e in errors.values()))
            metrics.update({f"max_rel_error_{k}_{name}": float(e) for k, e in errors.items()})
    if args.json:
        write_record(args.json, command="scripts/accuracy_report.py", config=vars(args), metrics=metrics,
                     wall_time=time.time() - start)


if __name__ == "__main__":
    main()
