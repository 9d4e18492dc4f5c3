"""Write tests/data/bessel_reference.json: log_ive, iv_ratio and 1 - iv_ratio at 50 digits.

The ground truth for svae.special. Every argument is a float32 number, so one table checks both
precisions. Run with `python scripts/bessel_reference.py` (about three minutes); the tests only
read the file.
"""
import json
import sys
from pathlib import Path

import mpmath as mp
import numpy as np

mp.mp.dps = 50
ORDERS = [0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 4.5, 7, 9.5, 10, 11.5, 12, 15.5, 24, 29, 29.5, 30, 31.5,
          49.5, 63, 100, 255.5, 511, 1000, 2047.5, 4095, 5000]
# Twelve points per decade over [1e-6, 1e6], plus both sides of each regime boundary.
ARGS = sorted(set(np.float32(np.logspace(-6, 6, 145)).tolist()
                  + [11.5, 11.99, 12.0, 12.01, 12.5, 29.5, 29.99, 30.0, 30.01, 30.5]))


def besseli(v, x):
    return mp.besseli(v, x, maxterms=10**7)


def main(out: Path) -> None:
    rows = []
    for v in ORDERS:
        for x in ARGS:
            xm = mp.mpf(x)
            iv, iv_prev = besseli(v, xm), besseli(v - 1, xm)
            ratio = iv / iv_prev
            rows.append({
                "v": v,
                "x": x,
                "log_ive": mp.nstr(mp.log(iv) - xm, 30),
                "iv_ratio": mp.nstr(ratio, 30),
                "iv_ratio_complement": mp.nstr(1 - ratio, 30),
            })
        print(f"v = {v} done", file=sys.stderr)
    out.write_text(json.dumps({"digits": 50, "rows": rows}, indent=0) + "\n")


if __name__ == "__main__":
    main(Path(__file__).resolve().parents[1] / "tests" / "data" / "bessel_reference.json")
