"""Write tests/data/spherical_reference.json: vMF and Power Spherical quantities at 50 digits.

The ground truth for the distributions' log normalisers, log densities, entropies, KL to the
uniform distribution, mean lengths and variances, for m (the ambient dimension) from 2 to 4096
and kappa from 0 to 1e20. Every kappa is a float32 number and the reference is computed at that
exact value. Each row is computed at WORK_DPS digits, because several quantities cancel: the KL
near kappa = 0 is O(kappa^2) against terms of size m log m, 1 - A(kappa) at kappa = 1e20 is
about (m - 1) / (2 kappa), and Var(w) there is about (m - 1) / (2 kappa^2). Run with
`python scripts/spherical_reference.py` (a few seconds); the tests only read the file.
"""
import json
import sys
from pathlib import Path

import mpmath as mp
import numpy as np

mp.mp.dps = 50
# Var(w) at kappa = 1e20 loses about 40 digits; the table is unchanged at 90 or 300 digits.
WORK_DPS = 150
DIMS = [2, 3, 4, 5, 7, 10, 11, 16, 33, 64, 100, 101, 256, 512, 1000, 1001, 2048, 3000, 4096]
KAPPAS = [float(np.float32(k)) for k in
          [0, 1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 0.1, 0.5, 1, 2, 3, 4, 7, 10, 20, 30, 50, 100, 300,
           1e3, 3e3, 1e4, 3e4, 1e5, 1e6, 1e7, 1e8, 1e10, 1e15, 1e20]]


def besseli(v, x):
    return mp.besseli(v, x, maxterms=10**7)


def log_sphere_area(m):
    """log |S^{m-1}| = log(2 pi^{m/2} / Gamma(m/2))."""
    return mp.log(2) + (mp.mpf(m) / 2) * mp.log(mp.pi) - mp.loggamma(mp.mpf(m) / 2)


def vmf_row(m, k):
    """Density C_m(k) exp(k w), C_m(k) = k^v / ((2 pi)^{m/2} I_v(k)), v = m/2 - 1."""
    log_area = log_sphere_area(m)
    if k == 0:
        log_c, a, kl = -log_area, mp.mpf(0), mp.mpf(0)
        var_radial = var_tangential = mp.mpf(1) / m
    else:
        v = mp.mpf(m) / 2 - 1
        iv = besseli(v, k)
        a = besseli(v + 1, k) / iv
        log_c = v * mp.log(k) - (mp.mpf(m) / 2) * mp.log(2 * mp.pi) - mp.log(iv)
        kl = k * a + log_c + log_area
        var_tangential = a / k
        var_radial = (1 - a) * (1 + a) - (m - 1) * a / k
    return {
        "log_normalizer": log_c,
        "log_prob_at_loc": log_c + k,
        "log_prob_at_antipode": log_c - k,
        "log_prob_orthogonal": log_c,
        "entropy": -log_c - k * a,
        "kl_uniform": kl,
        "mean_length": a,
        "one_minus_mean_length": 1 - a,
        "var_radial": var_radial,
        "var_tangential": var_tangential,
    }


def power_spherical_row(m, k):
    """Density (1 + w)^k / N, N = 2^{a+b} pi^b Gamma(a) / Gamma(a+b).

    a = (m - 1) / 2 + k, b = (m - 1) / 2, and t = (1 + w) / 2 ~ Beta(a, b).
    """
    b = mp.mpf(m - 1) / 2
    a = b + k
    log_n = (a + b) * mp.log(2) + b * mp.log(mp.pi) + mp.loggamma(a) - mp.loggamma(a + b)
    entropy = log_n - k * (mp.log(2) + mp.digamma(a) - mp.digamma(a + b))
    s = a + b
    return {
        "log_normalizer": -log_n,
        "log_prob_at_loc": k * mp.log(2) - log_n,
        "log_prob_at_antipode": -log_n if k == 0 else mp.ninf,
        "log_prob_orthogonal": -log_n,
        "entropy": entropy,
        "kl_uniform": mp.mpf(0) if k == 0 else log_sphere_area(m) - entropy,
        "mean_length": k / (k + m - 1),
        "one_minus_mean_length": mp.mpf(m - 1) / (k + m - 1),
        "var_radial": 4 * a * b / (s**2 * (s + 1)),
        "var_tangential": 4 * a * b / (s * (s + 1) * (m - 1)),
    }


def fmt(x):
    return "-inf" if x == mp.ninf else mp.nstr(x, 30)


def main(out: Path) -> None:
    rows = []
    for family, row in [("vmf", vmf_row), ("power_spherical", power_spherical_row)]:
        for m in DIMS:
            for kappa in KAPPAS:
                with mp.workdps(WORK_DPS):
                    values = row(m, mp.mpf(kappa))
                    rows.append({"family": family, "m": m, "kappa": kappa,
                                 **{key: fmt(x) for key, x in values.items()}})
            print(f"{family} m = {m} done", file=sys.stderr)
    description = ("von Mises-Fisher and Power Spherical log normalisers, log densities, "
                   "entropies, KL to the uniform distribution, mean lengths and variances of "
                   "w = mu^T z, computed with mpmath at float32 kappa")
    out.write_text(json.dumps({"digits": 50, "description": description, "rows": rows}, indent=0)
                   + "\n")


if __name__ == "__main__":
    main(Path(__file__).resolve().parents[1] / "tests" / "data" / "spherical_reference.json")
