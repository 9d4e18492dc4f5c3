"""The synthetic experiment (the paper's Figure 1): which latent space recovers a circle?

Five models with 2-dimensional codes and the same MLPs are trained on the data of
:mod:`svae.data.circle`: an auto-encoder, an N-VAE, an N-VAE with the KL scaled by beta < 1, an
S-VAE (vMF on S^1) and a Power-Spherical VAE. Each is scored on the test set by its ELBO and
importance-sampled log-likelihood (VAEs only), and by how well its codes recover the circle
(``circular_alignment`` of the code angle with the true angle, and ``distance_preservation``:
whether the codes keep the order of the distances between points on the true circle) and the
clusters (k-NN accuracy of the mixture component).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from svae.data.circle import circle_splits
from svae.metrics import circular_alignment, distance_preservation, knn_accuracy
from svae.nn.latent import latent_family
from svae.nn.objectives import importance_log_likelihood
from svae.nn.vae import VAE
from svae.train import TrainConfig, evaluate, fit, require_finite

# key: (display name, latent family, degrees of freedom, KL weight); every code is 2-dimensional.
MODELS = {
    "ae": ("AE", None, 2, 0.0),
    "n_vae": ("N-VAE", "normal", 2, 1.0),
    "n_vae_beta": ("N-VAE (beta)", "normal", 2, None),  # None: the config's beta
    "s_vae": ("S-VAE", "vmf", 1, 1.0),
    "ps_vae": ("PS-VAE", "power", 1, 1.0),
}


@dataclass
class CircleConfig:
    n_train: int = 4000
    n_val: int = 1000
    n_test: int = 1000
    hidden: tuple = (64, 32)
    epochs: int = 60
    batch_size: int = 100
    lr: float = 2e-3
    beta: float = 0.1
    ll_samples: int = 200
    knn_k: int = 5
    seed: int = 0
    models: tuple = field(default_factory=lambda: tuple(MODELS))

    def __post_init__(self):
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise ValueError(f"models must be among {list(MODELS)}, got {unknown}")
        if not 0 < self.beta < 1:
            raise ValueError(f"beta must be in (0, 1), got {self.beta}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {self.epochs!r}")


def build(name: str, config: CircleConfig) -> tuple[VAE, float]:
    _, family, dim, kl_weight = MODELS[name]
    latent = latent_family(family, dim) if family else None
    model = VAE.mlp(100, config.hidden, latent, "gaussian", code_dim=2, activation=torch.nn.Tanh)
    return model, config.beta if kl_weight is None else kl_weight


def score(model: VAE, train, test, config: CircleConfig) -> dict:
    """Test ELBO / log-likelihood (VAEs) and recovery of the circle and of the clusters."""
    metrics = {f"test_{k}": v for k, v in evaluate(model, test.x).items()}
    if model.is_variational:
        torch.manual_seed(config.seed)
        metrics["test_ll"] = importance_log_likelihood(model, test.x, config.ll_samples).mean().item()
    require_finite(metrics, "the trained model on the test set")
    train_codes, test_codes = model.embed(train.x), model.embed(test.x)
    metric = "cosine" if model.latent is not None and model.latent.name != "normal" else "euclidean"
    metrics["circular_alignment"] = circular_alignment(test.angle, test_codes)
    metrics["distance_preservation"] = distance_preservation(test.latent, test_codes)
    metrics["knn_accuracy"] = knn_accuracy(train_codes, train.component, test_codes, test.component,
                                           k=config.knn_k, metric=metric)
    return metrics


def run(config: CircleConfig, *, progress: bool = True) -> dict:
    """Train every model of ``config.models``; return a record with metrics, curves and test codes."""
    start = time.time()
    train, val, test = circle_splits(config.n_train, config.n_val, config.n_test, seed=config.seed)
    results, curves, codes = {}, {}, {"truth": test.latent.tolist()}
    for name in config.models:
        torch.manual_seed(config.seed)
        model, kl_weight = build(name, config)
        fitted = fit(model, train.x, val.x,
                     TrainConfig(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                                 kl_weight=kl_weight, seed=config.seed),
                     progress=progress, desc=MODELS[name][0])
        results[name] = {**score(model, train, test, config), "best_epoch": fitted["best_epoch"],
                         "train_seconds": fitted["wall_time"]}
        curves[name] = fitted["history"]
        codes[name] = model.embed(test.x).tolist()
    return {"config": asdict(config), "results": results, "curves": curves, "codes": codes,
            "components": test.component.tolist(), "wall_time": time.time() - start}


def results_table(results: dict) -> str:
    """A plain-text table of the metrics of every model."""
    columns = [("test_elbo", "ELBO"), ("test_ll", "log-lik."), ("circular_alignment", "angle"),
               ("distance_preservation", "distances"), ("knn_accuracy", "k-NN acc.")]
    lines = [f"{'model':<14}" + "".join(f"{title:>11}" for _, title in columns)]
    for name, metrics in results.items():
        cells = "".join(f"{metrics[key]:>11.3f}" if key in metrics else f"{'-':>11}" for key, _ in columns)
        lines.append(f"{MODELS[name][0]:<14}{cells}")
    return "\n".join(lines)


def verdict(results: dict) -> str:
    """Which model recovers the circle best, and by how much over the runner-up."""
    ranked = sorted(results, key=lambda m: -results[m]["distance_preservation"])
    best, second = ranked[0], ranked[1]
    b, s = results[best]["distance_preservation"], results[second]["distance_preservation"]
    text = (f"{MODELS[best][0]} keeps the circle best: the rank correlation between distances on the true "
            f"circle and in code space is {b:.3f}, against {s:.3f} for {MODELS[second][0]}")
    if "s_vae" in results and "n_vae" in results:
        sv, nv = results["s_vae"], results["n_vae"]
        text += (f"; S-VAE vs N-VAE: {sv['distance_preservation']:.3f} vs {nv['distance_preservation']:.3f}, "
                 f"log-likelihood {sv['test_ll']:.2f} vs {nv['test_ll']:.2f} nats")
    return text + "."


def component_names(components) -> dict:
    """The legend's name of each mixture component label: 0 -> ``component 1``, ..."""
    return {c: f"component {c + 1}" for c in set(components)}


def demo(config: CircleConfig, out_dir, *, json_path=None, progress: bool = True) -> dict:
    """``svae demo``: run the experiment, print the table, write the figure and the JSON record."""
    from pathlib import Path

    from svae.plots import latent_spaces
    from svae.records import write_record

    record = run(config, progress=progress)
    results = record["results"]
    print(results_table(results))
    print(verdict(results))
    out_dir = Path(out_dir)
    panels = {"original latent": record["codes"]["truth"],
              **{MODELS[name][0]: record["codes"][name] for name in results}}
    figure = latent_spaces(panels, record["components"], out_dir / "latent_spaces.png",
                           title="test points coloured by mixture component",
                           label_names=component_names(record["components"]))
    metrics = {f"{name}_{key}": value for name, values in results.items() for key, value in values.items()}
    path = write_record(json_path or out_dir / "demo.json", command="svae demo", config=record["config"],
                        metrics=metrics, wall_time=record["wall_time"], curves=record["curves"],
                        codes=record["codes"], labels=record["components"])
    print(f"figure: {figure}\nrecord: {path}")
    return record
