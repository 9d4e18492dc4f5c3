"""The geometry behind the high-dimensional study (docs/highdim.md): the vanishing surface area of
S^d, the concentration a posterior needs for a given mean cosine E[mu^T z], and the KL to the
uniform prior that this precision costs, against d, for the vMF, the Power Spherical and the
Spherical Cauchy.

    python scripts/highdim_geometry.py [--json results/highdim/geometry.json] [--figure docs/figures/highdim_geometry.png]
"""
from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.distributions import kl_divergence  # noqa: E402

from svae import HypersphericalUniform, PowerSpherical, SphericalCauchy, VonMisesFisher  # noqa: E402
from svae.atomic import atomic_write  # noqa: E402
from svae.distributions.fit import _solve_concentration  # noqa: E402  (A_m(kappa) = R by Newton's method)
from svae.distributions.hyperspherical_uniform import log_sphere_area  # noqa: E402
from svae.records import write_record  # noqa: E402

DIMS = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 100, 128]
COSINES = [0.5, 0.9]
F64 = torch.float64


def vmf_concentration(d: int, cosine: float) -> float:
    r = torch.tensor(cosine, dtype=F64)
    return _solve_concentration(r, 1 - r, d + 1).item()


def power_concentration(d: int, cosine: float) -> float:
    return cosine * d / (1 - cosine)  # its mean length is kappa / (kappa + d)


def cauchy_concentration(d: int, cosine: float) -> float:
    """rho with E[mu^T z] = cosine, by bisection (the mean length rises with rho)."""
    low, high = torch.tensor(0.0, dtype=F64), torch.tensor(1 - 1e-15, dtype=F64)
    loc = torch.eye(d + 1, dtype=F64)[0]
    for _ in range(60):
        middle = (low + high) / 2
        if SphericalCauchy(loc, middle).mean[0] < cosine:
            low = middle
        else:
            high = middle
    return ((low + high) / 2).item()


def kl_to_uniform(family, d: int, concentration: float) -> float:
    q = family(torch.eye(d + 1, dtype=F64)[0], torch.tensor(concentration, dtype=F64))
    return kl_divergence(q, HypersphericalUniform(d + 1, dtype=F64)).item()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="results/highdim/geometry.json")
    parser.add_argument("--figure", default="docs/figures/highdim_geometry.png")
    args = parser.parse_args(argv)
    start = time.time()
    families = {"vmf": (VonMisesFisher, vmf_concentration), "power": (PowerSpherical, power_concentration),
                "cauchy": (SphericalCauchy, cauchy_concentration)}
    table = {"d": DIMS, "log_area": [log_sphere_area(d + 1) for d in DIMS]}
    for cosine in COSINES:
        for name, (family, solve) in families.items():
            concentrations = [solve(d, cosine) for d in DIMS]
            table[f"{name}_concentration_cos{round(100 * cosine)}"] = concentrations
            table[f"{name}_kl_cos{round(100 * cosine)}"] = [kl_to_uniform(family, d, c) for d, c in zip(DIMS, concentrations)]

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    axes[0].plot(DIMS, table["log_area"], "k.-")
    axes[0].set(xlabel="degrees of freedom d", ylabel="log |S^d| (nats)", title="surface area of the unit sphere S^d",
                xscale="log")
    styles = {0.5: ":", 0.9: "-"}
    colours = {"vmf": "C0", "power": "C1"}
    for cosine in COSINES:
        for name in colours:
            axes[1].plot(DIMS, table[f"{name}_concentration_cos{round(100 * cosine)}"], styles[cosine], color=colours[name],
                         label=f"{name}, E[cos] = {cosine}")
        for name, colour in {**colours, "cauchy": "C2"}.items():
            axes[2].plot(DIMS, table[f"{name}_kl_cos{round(100 * cosine)}"], styles[cosine], color=colour,
                         label=f"{name}, E[cos] = {cosine}")
    axes[1].set(xlabel="degrees of freedom d", ylabel="concentration κ", xscale="log", yscale="log",
                title="κ for a given mean cosine E[μᵀz]")
    axes[2].set(xlabel="degrees of freedom d", ylabel="KL to the uniform prior (nats)", xscale="log", yscale="log",
                title="the KL that this precision costs")
    for axis in axes[1:]:
        axis.legend(fontsize=8, frameon=False)
    atomic_write(args.figure, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    write_record(args.json, command="python scripts/highdim_geometry.py", config={"dims": DIMS, "cosines": COSINES},
                 metrics=table, wall_time=time.time() - start)
    print(f"figure {args.figure}, record {args.json}")


if __name__ == "__main__":
    main()
