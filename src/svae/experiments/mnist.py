"""MNIST: N-VAE vs S-VAE (the paper's Tables 1 and 2).

The paper's protocol (PAPER.md): encoder 784-256-128 with ReLU, a head for the latent family,
the decoder mirrored with Bernoulli logits; Adam lr 1e-3, batch 64, dynamic binarisation at
training and test time, a linear KL warm-up over 100 epochs, early stopping with 50 epochs of
patience on the validation ELBO; the log-likelihood estimated by importance sampling with 500
samples; k-NN classification on the latent means with 100, 600 and 1000 labels, 20 label draws.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import torch

from svae.data.mnist import binarize, load_mnist
from svae.metrics import knn_accuracy
from svae.nn.latent import FAMILIES, latent_family
from svae.nn.objectives import importance_log_likelihood
from svae.nn.vae import VAE
from svae.records import config_differences
from svae.train import TrainConfig, evaluate, fit, require_finite, stream_seed

DIMS = (2, 5, 10, 20, 40)


@dataclass
class MnistConfig:
    latent: str = "vmf"
    dim: int = 10
    spheres: int = 1  # the spherical families' d split over a product of spheres (svae.nn.product)
    seed: int = 0
    epochs: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_epochs: int = 100
    patience: int | None = 50
    hidden: tuple = (256, 128)
    correction: bool = False
    ll_samples: int = 500
    knn_labels: tuple = (100, 600, 1000)
    knn_draws: int = 20
    knn_k: int = 5
    train_subset: int | None = None  # use only the first n training/validation/test images (smoke runs)
    micro_batches: int = 1
    device: str = "cpu"

    def __post_init__(self):
        if self.latent not in FAMILIES:
            raise ValueError(f"latent must be one of {list(FAMILIES)}, got {self.latent!r}")
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {self.dim!r}")
        latent_family(self.latent, self.dim, spheres=self.spheres)  # raises for a bad number of spheres
        if self.ll_samples < 1 or self.knn_draws < 1:
            raise ValueError("ll_samples and knn_draws must be >= 1")
        self.hidden = tuple(self.hidden)
        if not self.hidden or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in self.hidden):
            raise ValueError(f"hidden must be one or more layer widths >= 1, got {self.hidden!r}")
        self.knn_labels = tuple(self.knn_labels)
        self.train_config()  # validates epochs, batch size, learning rate, ... before any data is read

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                           warmup_epochs=self.warmup_epochs, patience=self.patience, correction=self.correction,
                           seed=self.seed, device=self.device, micro_batches=self.micro_batches)


# Run budgets. `paper` is the full protocol (a GPU or a long CPU run); `fast` fits this project's
# 2-core CPU overnight for the whole grid (see docs/mnist.md for the measured budget); `smoke` is
# the test suite's.
PROFILES = {
    "paper": {},
    "fast": {"epochs": 60, "warmup_epochs": 10, "patience": 10},
    "smoke": {"epochs": 1, "warmup_epochs": 0, "patience": None, "ll_samples": 5, "knn_draws": 2,
              "knn_labels": (100,), "train_subset": 1000},
}


def describe_budget(config: MnistConfig, profile: str) -> str:
    """One line on a run's budget, printed as it starts: the profiles differ by hours."""
    stopping = (f"early stopping after {config.patience} epochs without a better validation ELBO"
                if config.patience else "no early stopping")
    line = (f"profile {profile}: at most {config.epochs} epochs of batch {config.batch_size}, KL warm-up over "
            f"{config.warmup_epochs}, {stopping}; the time left is shown as epochs finish")
    if profile != "paper":
        line += " (--profile paper is the paper's protocol: up to 1000 epochs, hours on a CPU)"
    return line


def build_model(config: MnistConfig) -> VAE:
    return VAE.mlp(784, config.hidden, latent_family(config.latent, config.dim, spheres=config.spheres), "bernoulli")


@torch.no_grad()
def knn_scores(model: VAE, data, config: MnistConfig) -> dict:
    """k-NN accuracy on the latent means/modes: labelled sets drawn from the training images."""
    metric = "euclidean" if config.latent == "normal" else "cosine"
    train_codes, test_codes = model.embed(data.train_x), model.embed(data.test_x)
    generator = torch.Generator().manual_seed(config.seed)
    scores = {}
    for n in config.knn_labels:
        accuracies = []
        for _ in range(config.knn_draws):
            chosen = torch.randperm(len(train_codes), generator=generator)[:n]
            accuracies.append(knn_accuracy(train_codes[chosen], data.train_y[chosen], test_codes, data.test_y,
                                           k=min(config.knn_k, n), metric=metric))
        scores[f"knn_acc_{n}"] = statistics.mean(accuracies)
        scores[f"knn_acc_{n}_std"] = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    return scores


# The random streams of a run's test evaluation, (seed, tag, ...): the test images' binarisation and
# the sampling. Negative tags, because training's streams are (seed, epoch >= 1) for the shuffle,
# (seed, 0) for validation and (seed, step >= 1, micro-batch).
_TEST_IMAGES, _TEST_SAMPLING = -1, -2


def binarized_test_set(x: torch.Tensor, config: MnistConfig) -> torch.Tensor:
    """The test images binarised once, from the run's seed alone: a run's ELBO, reconstruction, KL
    and log-likelihood are measured on the same binary images, and so are all models of one seed."""
    return binarize(x, torch.Generator().manual_seed(stream_seed(config.seed, _TEST_IMAGES)))


@torch.no_grad()
def test_log_likelihood(model: VAE, x: torch.Tensor, config: MnistConfig, batch_size: int = 100,
                        estimate=importance_log_likelihood) -> float:
    """Mean importance-sampled log-likelihood of the binary test images ``x`` (:func:`binarized_test_set`).

    Each batch draws its samples from a seed of its own, so that two models (or estimators) see the
    same random numbers batch by batch. ``estimate(model, batch, samples)``, one value per image,
    replaces the importance-sampling estimate to evaluate another estimator under the same protocol.
    """
    total = 0.0
    with torch.random.fork_rng(devices=[]):
        for start in range(0, len(x), batch_size):
            torch.manual_seed(stream_seed(config.seed, _TEST_SAMPLING, start))
            total += estimate(model, x[start:start + batch_size], config.ll_samples).sum().item()
    return total / len(x)


def load_data(config: MnistConfig, *, data_dir=None, cache_dir=None):
    """MNIST, cut to ``config.train_subset`` images (and a fifth as many validation/test) if set."""
    data = load_mnist(data_dir=data_dir, cache_dir=cache_dir)
    if config.train_subset:
        n = config.train_subset
        data = replace(data, train_x=data.train_x[:n], train_y=data.train_y[:n], val_x=data.val_x[: n // 5],
                       val_y=data.val_y[: n // 5], test_x=data.test_x[: n // 5], test_y=data.test_y[: n // 5])
    return data


def train_model(config: MnistConfig, data, *, checkpoint=None, progress: bool = True) -> tuple[VAE, dict]:
    """Build and train the model of ``config``; (model at its best epoch, the training history)."""
    torch.manual_seed(config.seed)
    model = build_model(config)
    fitted = fit(model, data.train_x, data.val_x, config.train_config(), transform=binarize, progress=progress,
                 desc=f"{config.latent} d={config.dim}", checkpoint=checkpoint)
    return model, fitted


def _comparable(config: MnistConfig) -> dict:
    """The fields that determine the trained weights (not the device they were trained on)."""
    fields = asdict(config)
    fields.pop("device")
    return fields


def save_model(path, model: VAE, config: MnistConfig) -> None:
    """The trained weights with the configuration that produced them, written atomically."""
    from svae.atomic import atomic_write

    atomic_write(path, lambda tmp: torch.save({"config": _comparable(config), "state_dict": model.state_dict()}, tmp))


def load_model(path, config: MnistConfig) -> VAE | None:
    """The model saved at ``path`` if it was trained with ``config``, else None (to be trained)."""
    try:
        saved = torch.load(path, map_location=config.device, weights_only=True)
    except FileNotFoundError:
        return None
    if not isinstance(saved.get("config"), dict) or config_differences(saved["config"], config, ignore=("device",)):
        return None
    model = build_model(config).to(config.device)
    model.load_state_dict(saved["state_dict"])
    return model


def trained_model(config: MnistConfig, profile: str, models_dir="results/mnist") -> VAE:
    """The model that `svae reproduce mnist --profile <profile>` trained for ``config``, in eval mode.

    Raises FileNotFoundError naming the command that trains it when there is none (or the saved one
    had another configuration).
    """
    path = model_path(Path(models_dir) / profile, config)
    model = load_model(path, config)
    if model is None:
        seeds = f" --seeds {config.seed + 1}" if config.seed else ""
        raise FileNotFoundError(
            f"no {config.latent} model with seed {config.seed} trained with the {profile} profile at d = {config.dim}: "
            f"{path} is missing or holds another configuration (train it with `svae reproduce mnist --profile "
            f"{profile} --dims {config.dim} --latents {config.latent}{seeds}`)")
    return model.eval()


@torch.no_grad()
def evaluate_on_test_set(model: VAE, data, config: MnistConfig) -> dict:
    """Tables 1 and 2's figures of a trained model: test ELBO, RE, KL and LL on one binarisation of
    the test images (:func:`binarized_test_set`), and the k-NN accuracies."""
    model.eval()
    test_x = binarized_test_set(data.test_x, config)
    test = evaluate(model, test_x, seed=stream_seed(config.seed, _TEST_SAMPLING))
    scores = {"test_ll": test_log_likelihood(model, test_x, config), "test_elbo": test["elbo"],
              "test_re": test["recon"], "test_kl": test["kl"]}
    return {**require_finite(scores, "the trained model's test set"), **knn_scores(model, data, config)}


def run(config: MnistConfig, *, data_dir=None, cache_dir=None, checkpoint=None, model_path=None,
        progress: bool = True) -> dict | None:
    """Train and evaluate one model; the record (None on data-parallel workers other than rank 0).

    With ``model_path`` the trained weights are kept there too (M1+M2 reuses them as its M1).
    """
    start = time.time()
    data = load_data(config, data_dir=data_dir, cache_dir=cache_dir).to(config.device)
    model, fitted = train_model(config, data, checkpoint=checkpoint, progress=progress)
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return None
    if model_path is not None:
        save_model(model_path, model, config)
    metrics = {**evaluate_on_test_set(model, data, config), "best_epoch": fitted["best_epoch"],
               "epochs_run": len(fitted["history"])}
    record = {"config": asdict(config), "metrics": metrics, "history": fitted["history"],
              "wall_time": fitted["resumed_seconds"] + time.time() - start}
    if model.latent.code_dim <= 3:  # S^1 / S^2 / the plane: keep codes for `svae plot latent`
        record["codes"] = model.embed(data.test_x[:2000]).tolist()
        record["labels"] = data.test_y[:2000].tolist()
    return record


# --- Tables 1 and 2: d x latent family x seed, resumable ---------------------------------------------

REPRODUCE_LATENTS = ("normal", "vmf", "power")
NAMES = {"normal": "N-VAE", "vmf": "S-VAE", "power": "PS-VAE", "cauchy": "SC-VAE"}


def run_name(config: MnistConfig) -> str:
    """``<latent>_d<dim>[_spheres<K>]_seed<seed>``: the name of a run's record, weights and checkpoint."""
    spheres = f"_spheres{config.spheres}" if config.spheres > 1 else ""
    return f"{config.latent}_d{config.dim}{spheres}_seed{config.seed}"


def record_path(out_dir, config: MnistConfig) -> Path:
    return Path(out_dir) / f"{run_name(config)}.json"


def model_path(out_dir, config: MnistConfig) -> Path:
    """Where a grid run keeps its trained weights (not committed): ``<out_dir>/models/<run>.pt``."""
    return Path(out_dir) / "models" / f"{record_path(out_dir, config).stem}.pt"


def write_run(config: MnistConfig, path, *, data_dir=None, cache_dir=None, command="svae reproduce mnist") -> None:
    """Train one configuration (resuming from its checkpoint if any), write its record, keep its weights."""
    from svae.records import write_record

    path = Path(path)
    checkpoint = path.parent / "checkpoints" / f"{path.stem}.pt"
    record = run(config, data_dir=data_dir, cache_dir=cache_dir, checkpoint=checkpoint,
                 model_path=model_path(path.parent, config), progress=False)
    write_record(path, command=command, config=record["config"], metrics=record["metrics"],
                 wall_time=record["wall_time"], history=record["history"],
                 **{k: record[k] for k in ("codes", "labels") if k in record})
    checkpoint.unlink(missing_ok=True)


def reproduce(*, profile: str = "fast", seeds: int = 1, jobs: int = 1, out_dir=None, table=None, dims=DIMS,
              latents=REPRODUCE_LATENTS, data_dir=None, cache_dir=None, progress: bool = True,
              train: bool = True, reuse: str = "same-code") -> str:
    """Run d in {2, 5, 10, 20, 40} x latent families x seeds with a profile's budget; write the tables.

    With ``train=False`` only the tables are written, from the records present so far.
    """
    from svae.experiments.grid import run_grid

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    out_dir = Path(out_dir or f"results/mnist/{profile}")
    table = Path(table or "results/mnist.md")  # the name issue 4 gives; the heading names the profile
    # A repeated dimension or family would train the same run twice and count its record twice.
    configs = [MnistConfig(latent=latent, dim=d, seed=s, **PROFILES[profile])
               for d in dict.fromkeys(dims) for latent in dict.fromkeys(latents) for s in range(seeds)]
    if train:
        load_mnist(data_dir=data_dir, cache_dir=cache_dir)  # verified once, before any worker starts
        run_grid(configs, partial(record_path, out_dir), partial(write_run, data_dir=data_dir, cache_dir=cache_dir),
                 jobs=jobs, desc=f"mnist {profile}", progress=progress, reuse=reuse, command="svae reproduce mnist")
    return write_tables(configs, out_dir, table, profile)


def write_tables(configs, out_dir, table, profile: str) -> str:
    """Table 1 (LL, ELBO, RE, KL) and Table 2 (k-NN accuracy) next to the paper's numbers, from the
    records present (an incomplete grid says how many runs it lacks)."""
    from svae.experiments.grid import records_present, write_table
    from svae.experiments.paper import MNIST_TABLE1, MNIST_TABLE2

    present, missing = records_present(configs, partial(record_path, out_dir))
    groups = {}
    for config, record in present:
        groups.setdefault((config.dim, config.latent), []).append(record["metrics"])

    def cell(values, scale=1.0, digits=2):
        values = [scale * v for v in values]
        mean = statistics.mean(values)
        return mean, (f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}")

    counts = sorted({len(runs) for runs in groups.values()})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    budget = PROFILES[profile]
    dims, latents = sorted({c.dim for c in configs}), list(dict.fromkeys(c.latent for c in configs))
    n_seeds = len({c.seed for c in configs})
    part = ((f" --dims {' '.join(map(str, dims))}" if dims != sorted(DIMS) else "")
            + (f" --latents {' '.join(latents)}" if set(latents) != set(REPRODUCE_LATENTS) else "")
            + (f" --seeds {n_seeds}" if n_seeds > 1 else ""))
    lines = [f"# MNIST: Tables 1 and 2 of Davidson et al. (2018), profile `{profile}`", "",
             f"Generated by `svae reproduce mnist --profile {profile}{part}` from the records in `{out_dir}/`; "
             f"{seeds} seed(s) per cell (mean ± std over seeds). Budget: "
             + (", ".join(f"{k} = {v}" for k, v in budget.items()) or "the paper's full protocol")
             + ". Paper values from PAPER.md (N-VAE / S-VAE); Δ = ours − paper (higher is better for LL, "
             "ELBO, RE and accuracy).", ""]
    if missing:
        lines += [f"Incomplete grid: {missing} of its {len(configs)} runs have no record yet; their rows are "
                  "missing.", ""]
    lines += [
             "## Table 1: nats per image", "",
             "| d | model | LL | paper LL | Δ LL | ELBO | paper ELBO | Δ ELBO | RE | paper RE | Δ RE | KL | paper KL | Δ KL |",
             "|---|---|" + "---:|" * 12]
    for (d, latent), runs in sorted(groups.items()):
        paper = MNIST_TABLE1.get(d, {})
        column = {"normal": 0, "vmf": 1}.get(latent)
        row = [str(d), NAMES[latent]]
        for key, metric in (("ll", "test_ll"), ("elbo", "test_elbo"), ("re", "test_re"), ("kl", "test_kl")):
            mean, text = cell([r[metric] for r in runs])
            reference = paper[key][column] if column is not None and key in paper else None
            row += [text, f"{reference:.2f}" if reference is not None else "—",
                    f"{mean - reference:+.2f}" if reference is not None else "—"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"## Table 2: k-NN accuracy (%) on the latent means (k = {configs[0].knn_k}; cosine distance on "
              f"the sphere, Euclidean for the Gaussian; {configs[0].knn_draws} random draws of the labelled set; ± is "
              "over seeds, or over the label draws where a cell has one seed)", ""]
    label_counts = sorted({int(k.split("_")[2]) for r in groups.values() for k in r[0] if k.startswith("knn_acc_") and not k.endswith("_std")})
    lines.append("| d | model | " + " | ".join(f"{n} labels | paper | Δ" for n in label_counts) + " |")
    lines.append("|---|---|" + "---:|---:|---:|" * len(label_counts))
    for (d, latent), runs in sorted(groups.items()):
        column = {"normal": 0, "vmf": 1}.get(latent)
        row = [str(d), NAMES[latent]]
        for n in label_counts:
            mean, text = cell([r[f"knn_acc_{n}"] for r in runs], scale=100, digits=1)
            if len(runs) == 1 and configs[0].knn_draws > 1:
                text += f" ± {100 * runs[0][f'knn_acc_{n}_std']:.1f}"
            reference = MNIST_TABLE2.get(d, {}).get(n, (None, None))[column] if column is not None else None
            row += [text, f"{reference:.1f}" if reference is not None else "—",
                    f"{mean - reference:+.1f}" if reference is not None else "—"]
        lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines) + "\n"
    write_table(table, text)
    return text
