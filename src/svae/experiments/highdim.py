"""The high-dimensional study (issue 9): which hyperspherical latent matches the N-VAE at large d.

The paper's S-VAE loses to the N-VAE on MNIST at d = 20 and 40. This grid trains, on the MNIST
protocol of :mod:`svae.experiments.mnist` and one budget for all, the N-VAE and every spherical
family (vMF, Power Spherical, Spherical Cauchy) on one sphere S^d and on a product of spheres
with about ``k`` degrees of freedom each (``K = d // k`` spheres for k = 5 and 10 by default,
:mod:`svae.nn.product`), at
d in {10, 20, 40, 64}, and writes the table with each model's LL beside the N-VAE's of the same
seeds.
"""
from __future__ import annotations

import statistics
from functools import partial
from pathlib import Path

from svae.data.mnist import load_mnist
from svae.experiments.mnist import NAMES, PROFILES, MnistConfig, record_path, write_run
from svae.nn.latent import FAMILIES
from svae.nn.product import sphere_dims

DIMS = (10, 20, 40, 64)
SPHERE_DOF = (5, 10)  # spheres of about 5 and about 10 degrees of freedom, as the issue suggests
COMMAND = "svae reproduce highdim"


def sphere_counts(latent: str, dim: int, sphere_dof=SPHERE_DOF) -> list[int]:
    """The numbers of spheres the grid trains ``latent`` on at ``dim``: 1, and ``dim // k`` for each
    ``k`` of ``sphere_dof`` (the Gaussian: 1 only)."""
    if latent == "normal":
        return [1]
    return list(dict.fromkeys([1] + [max(1, dim // k) for k in sphere_dof]))


def grid(profile: str, seeds: int, dims=DIMS, latents=FAMILIES, sphere_dof=SPHERE_DOF) -> list[MnistConfig]:
    return [MnistConfig(latent=latent, dim=d, spheres=k, seed=s, **PROFILES[profile])
            for d in dict.fromkeys(dims) for latent in dict.fromkeys(latents)
            for k in sphere_counts(latent, d, sphere_dof) for s in range(seeds)]


def reproduce(*, profile: str = "fast", seeds: int = 2, jobs: int = 1, out_dir=None, table=None, dims=DIMS,
              latents=FAMILIES, sphere_dof=SPHERE_DOF, data_dir=None, cache_dir=None, progress: bool = True,
              train: bool = True, reuse: str = "same-code") -> str:
    """Train the grid (resumable, records in ``out_dir``) and write its table (``train=False``: the
    table alone, from the records present)."""
    from svae.experiments.grid import run_grid

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    if not sphere_dof or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in sphere_dof):
        raise ValueError(f"sphere_dof must be one or more ints >= 1, got {sphere_dof!r}")
    out_dir = Path(out_dir or f"results/highdim/{profile}")
    configs = grid(profile, seeds, dims, latents, sphere_dof)
    if train:
        load_mnist(data_dir=data_dir, cache_dir=cache_dir)  # verified once, before any worker starts
        run_grid(configs, partial(record_path, out_dir),
                 partial(write_run, data_dir=data_dir, cache_dir=cache_dir, command=COMMAND),
                 jobs=jobs, desc=f"highdim {profile}", progress=progress, reuse=reuse, command=COMMAND)
    return write_table(configs, out_dir, Path(table or "results/highdim.md"), profile,
                       command=_command(profile, configs, dims, latents, sphere_dof))


def _command(profile, configs, dims, latents, sphere_dof) -> str:
    seeds = len({c.seed for c in configs})
    return (f"{COMMAND} --profile {profile} --seeds {seeds}"
            + (f" --dims {' '.join(map(str, dims))}" if tuple(dims) != DIMS else "")
            + (f" --latents {' '.join(latents)}" if tuple(latents) != FAMILIES else "")
            + (f" --sphere-dof {' '.join(map(str, sphere_dof))}" if tuple(sphere_dof) != SPHERE_DOF else ""))


def latent_space(latent: str, dim: int, spheres: int) -> str:
    """``R^40``, ``S^40`` or ``(S^5)^8``; uneven splits as ``(S^6)^4 × (S^5)^8``."""
    if latent == "normal":
        return f"R^{dim}"
    sizes = sphere_dims(dim, spheres)
    groups = {size: sizes.count(size) for size in dict.fromkeys(sizes)}
    return " × ".join(f"S^{size}" if count == 1 else f"(S^{size})^{count}" for size, count in groups.items())


def _mean_std(values, scale=1.0, digits=2) -> str:
    values = [scale * v for v in values]
    text = f"{statistics.mean(values):.{digits}f}"
    return text + (f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else "")


def write_table(configs, out_dir, table: Path, profile: str, command: str) -> str:
    """Per d, every model's test LL, its difference to the N-VAE of the same seeds, ELBO, RE, KL,
    k-NN accuracy with 100 labels and minutes per run; then the best hyperspherical model per d."""
    from svae.experiments.grid import records_present, write_table as write

    present, missing = records_present(configs, partial(record_path, out_dir))
    runs: dict = {}
    for config, record in present:
        runs.setdefault((config.dim, config.latent, config.spheres), {})[config.seed] = record
    budget = ", ".join(f"{k} = {v}" for k, v in PROFILES[profile].items()) or "the paper's full protocol"
    lines = [f"# High-dimensional latents on MNIST (issue 9), profile `{profile}`", "",
             f"Generated by `{command}` from the records in `{out_dir}/`. Budget: {budget}. Mean ± std over "
             "seeds; Δ LL is the mean over seeds of (model − N-VAE of the same d and seed), over the seeds both "
             "have. Minutes: wall time per run on the machine that wrote the record (training and the "
             "500-sample LL), not a benchmark (see `benchmarks/train_step.py`).", ""]
    if missing:
        lines += [f"Incomplete grid: {missing} of its {len(configs)} runs have no record yet; their rows are missing "
                  "or have fewer seeds.", ""]
    lines += ["| d | model | latent space | seeds | LL | Δ LL vs N-VAE | ELBO | RE | KL | k-NN 100 labels (%) | "
              "minutes |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts = []
    for d in sorted({c.dim for c in configs}):
        baseline = runs.get((d, "normal", 1), {})
        best = None
        for (dim, latent, spheres), by_seed in sorted(runs.items(), key=lambda item: _row_order(item[0])):
            if dim != d:
                continue
            metrics = [r["metrics"] for r in by_seed.values()]
            shared = sorted(set(by_seed) & set(baseline))
            gaps = [by_seed[s]["metrics"]["test_ll"] - baseline[s]["metrics"]["test_ll"] for s in shared]
            gap = _mean_std(gaps) if gaps and latent != "normal" else "—"
            if gaps and latent != "normal" and (best is None or statistics.mean(gaps) > best[0]):
                best = (statistics.mean(gaps), latent, spheres, len(gaps))
            lines.append("| " + " | ".join([
                str(d), NAMES[latent], latent_space(latent, d, spheres), str(len(metrics)),
                _mean_std([m["test_ll"] for m in metrics]), gap, _mean_std([m["test_elbo"] for m in metrics]),
                _mean_std([m["test_re"] for m in metrics]), _mean_std([m["test_kl"] for m in metrics]),
                _mean_std([m["knn_acc_100"] for m in metrics], scale=100, digits=1),
                _mean_std([r["wall_time"] / 60 for r in by_seed.values()], digits=1)]) + " |")
        if best is not None:
            gap, latent, spheres, seeds = best
            verdicts.append(f"- d = {d}: best hyperspherical model {NAMES[latent]} on {latent_space(latent, d, spheres)}, "
                            f"Δ LL {gap:+.2f} nats against the N-VAE over {seeds} seed(s): "
                            + ("matches or beats it." if gap >= 0 else "below it."))
    lines += ["", "## Best hyperspherical model per d (mean Δ LL over the seeds shared with the N-VAE)", ""]
    lines += verdicts or ["No dimension has both an N-VAE and a hyperspherical record yet."]
    text = "\n".join(lines) + "\n"
    write(table, text)
    return text


def _row_order(key):
    dim, latent, spheres = key
    return dim, FAMILIES.index(latent), spheres
