"""Semi-supervised MNIST with 100 labels: M1+M2 (Kingma et al. 2014) with spherical and Gaussian
latents (the paper's Table 3).

M1 is the unsupervised VAE of :mod:`svae.experiments.mnist` (latent z1, trained on all 50 000
training images). Each image is encoded by M1's posterior mean (Gaussian) or mean direction
(sphere) of its grey levels. M2 (:class:`svae.nn.m2.M2`) is trained on these codes: all 50 000 as
unlabelled data, a balanced labelled set (``labels / 10`` per class) in every step, loss
-U (unlabelled batch) - w L (labelled set) + alpha * cross-entropy (labelled set), means over each
set, w = labels / 50 000 by default (each image weighs the same, as in Kingma et al.'s bound).
The reported figure is the test accuracy of M2's classifier q(y | z1). Configurations: N+N
(Gaussian M1 and M2), S+S (both vMF), S+N (vMF M1, Gaussian M2).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from svae.experiments.mnist import PROFILES as MNIST_PROFILES
from svae.experiments.mnist import MnistConfig, load_data, load_model, model_path, save_model, train_model
from svae.metrics import classification_accuracy
from svae.nn.latent import latent_family
from svae.nn.m2 import DATA_FAMILIES, M2
from svae.train import TrainConfig, fit, require_finite

NUM_CLASSES = 10
CONFIGURATIONS = {"N+N": ("normal", "normal"), "S+S": ("vmf", "vmf"), "S+N": ("vmf", "normal")}
DIMS = (5, 10, 50)

# M1 budgets are those of svae.experiments.mnist; M2's are below.
PROFILES = {
    "paper": {"m2_epochs": 300, "m2_patience": 50},
    "fast": {"m2_epochs": 30, "m2_patience": 10},
    "smoke": {"m2_epochs": 1, "m2_patience": None},
}


@dataclass
class M1M2Config:
    m1: str = "vmf"
    m2: str = "normal"
    z1: int = 10
    z2: int = 10
    spheres: int = 1  # M1's z1 split over a product of spheres (svae.nn.product); M2's z2 stays one
    labels: int = 100
    seed: int = 0
    profile: str = "fast"  # M1's budget (svae.experiments.mnist.PROFILES) and M2's (PROFILES here)
    m2_epochs: int = 30
    m2_patience: int | None = 10
    # p(z1 | y, z2): "normal" (per-dimension Gaussian, as Kingma et al.'s M2 on M1's codes) or "vmf".
    # Gaussian by default for sphere codes too: with a vMF likelihood, S+S's vMF z2 collapsed to the
    # prior (docs/m1m2.md, "What S+S lacks is z2, not y")
    m2_data: str = "normal"
    # M2's KL weight grows linearly from 0 over these epochs (svae.train.TrainConfig.warmup_epochs)
    m2_warmup_epochs: int = 0
    # Naesseth et al.'s rejection-gradient correction for a vMF z2: unbiased gradients (no effect on a
    # Gaussian z2)
    m2_correction: bool = True
    m2_lr: float = 3e-4
    m2_batch_size: int = 100
    m2_hidden: tuple = (500,)
    alpha: float = 1.0  # weight of the labelled cross-entropy, per labelled example
    # weight of the labelled bound's mean next to the unlabelled bound's mean; None: labels / training
    # images, so that every image counts once, as in Kingma et al.'s J = sum_labelled L + sum_unlabelled U
    labelled_weight: float | None = None
    # M2's epoch: best validation accuracy (the 10 000 validation labels pick the epoch; Kingma et
    # al.'s code also computes the validation error every pass), or best validation bound U
    # ("elbo": no labels beyond the labelled set are used at all)
    m2_select: str = "accuracy"
    m1_codes: str = "mean"  # M2's training data: M1's posterior means, or a fresh sample of it every step
    device: str = "cpu"

    def __post_init__(self):
        for name in ("m1", "m2"):
            if getattr(self, name) not in ("normal", "vmf"):
                raise ValueError(f"{name} must be 'normal' or 'vmf', got {getattr(self, name)!r}")
        for name in ("z1", "z2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {list(PROFILES)}, got {self.profile!r}")
        self.m1_config()  # raises for a number of spheres that z1 or the family does not allow
        if self.m2_data not in DATA_FAMILIES:
            raise ValueError(f"m2_data must be one of {list(DATA_FAMILIES)}, got {self.m2_data!r}")
        if self.m2_select not in ("elbo", "accuracy"):
            raise ValueError(f"m2_select must be 'elbo' or 'accuracy', got {self.m2_select!r}")
        if self.m1_codes not in ("mean", "sample"):
            raise ValueError(f"m1_codes must be 'mean' or 'sample', got {self.m1_codes!r}")
        if self.labelled_weight is not None and not self.labelled_weight >= 0:
            raise ValueError(f"labelled_weight must be None or a number >= 0, got {self.labelled_weight!r}")
        if isinstance(self.m2_warmup_epochs, bool) or not isinstance(self.m2_warmup_epochs, int) \
                or self.m2_warmup_epochs < 0:
            raise ValueError(f"m2_warmup_epochs must be an int >= 0, got {self.m2_warmup_epochs!r}")
        check_label_count(self.labels)
        self.m2_hidden = tuple(self.m2_hidden)
        self.m2_train_config()

    def m1_config(self) -> MnistConfig:
        return MnistConfig(latent=self.m1, dim=self.z1, spheres=self.spheres, seed=self.seed, device=self.device,
                           **MNIST_PROFILES[self.profile])

    def m2_train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.m2_epochs, lr=self.m2_lr, batch_size=self.m2_batch_size,
                           patience=self.m2_patience, warmup_epochs=self.m2_warmup_epochs,
                           correction=self.m2_correction, seed=self.seed, device=self.device)


def check_label_count(labels, available: int | None = None) -> int:
    """A number of labels that splits evenly over the classes and exists in the training set."""
    if isinstance(labels, bool) or not isinstance(labels, int) or labels <= 0:
        raise ValueError(f"labels must be a positive int, got {labels!r}")
    if labels % NUM_CLASSES:
        raise ValueError(f"labels must be divisible by the {NUM_CLASSES} classes (a balanced set), got {labels}")
    if available is not None and labels > available:
        raise ValueError(f"labels ({labels}) exceeds the {available} labelled images available per class x classes")
    return labels


def balanced_labels(targets: torch.Tensor, labels: int, seed: int) -> torch.Tensor:
    """Indices of ``labels / 10`` random training examples of each class."""
    per_class = labels // NUM_CLASSES
    counts = torch.bincount(targets, minlength=NUM_CLASSES)
    check_label_count(labels, available=int(counts.min()) * NUM_CLASSES)
    generator = torch.Generator().manual_seed(seed)
    chosen = [torch.nonzero(targets == c).squeeze(-1)[torch.randperm(int(counts[c]), generator=generator)[:per_class]]
              for c in range(NUM_CLASSES)]
    return torch.cat(chosen)


def m2_objective(labelled_x: torch.Tensor, labelled_y: torch.Tensor, *, alpha: float, labelled_weight: float,
                 transform=None):
    """The semi-supervised loss, for :func:`svae.train.fit`: -U on the batch, and on the whole labelled
    set -labelled_weight * L and alpha * cross-entropy (means over each set; the labelled set goes
    through ``transform`` at every step, as the batches do). The reported ELBO is U."""
    targets = F.one_hot(labelled_y, NUM_CLASSES).to(labelled_x.dtype)

    def objective(model: M2, x: torch.Tensor, kl_weight: float = 1.0, correction: bool = False) -> dict:
        options = {"kl_weight": kl_weight, "correction": correction}
        x_labelled = labelled_x if transform is None else transform(labelled_x)
        unlabelled = model.unlabelled_bound(x, **options)
        labelled = model.labelled_bound(x_labelled, targets, **options)
        cross_entropy = F.cross_entropy(model.classify(x_labelled), labelled_y)
        loss = -unlabelled["objective"].mean() - labelled_weight * labelled["objective"].mean() + alpha * cross_entropy
        return {"loss": loss, **{k: unlabelled[k] for k in ("elbo", "recon", "kl")}}

    return objective


def m1_path(mnist_dir, config: M1M2Config) -> Path:
    """M1 is the MNIST grid's model of the same configuration: trained once, shared by both experiments."""
    return model_path(Path(mnist_dir) / config.profile, config.m1_config())


@torch.no_grad()
def accuracy(m2: M2, codes: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``codes`` that M2's classifier q(y | z1) labels correctly."""
    m2.eval()
    return classification_accuracy(m2.classify(codes.to(next(m2.parameters()).device)).cpu(), labels)


@torch.no_grad()
def m2_diagnostics(m2: M2, codes: torch.Tensor, labels: torch.Tensor, *, draws: int = 4, chunk: int = 1000) -> dict:
    """How M2 divides the codes between y and z2, on labelled ``codes``:

    * ``decoder_accuracy``: how often argmax_y L(x, y), the generative model's own classification
      (the bound averaged over ``draws`` samples of z2), is the true class; chance (0.1) if
      p(x | y, z2) ignores y;
    * ``z2_kl``: mean KL(q(z2 | x, y) || p(z2)) at the true class, the nats z2 carries.
    """
    m2.eval()
    device = next(m2.parameters()).device
    hits, kl = 0, 0.0
    for start in range(0, len(codes), chunk):
        x, y = codes[start:start + chunk].to(device), labels[start:start + chunk].to(device)
        bound = sum(m2.every_class_bound(x)["elbo"] for _ in range(draws)) / draws
        hits += (bound.argmax(-1) == y).sum().item()
        kl += m2.latent.kl(m2.posterior(x, F.one_hot(y, m2.num_classes).to(x.dtype))).sum().item()
    return {"decoder_accuracy": hits / len(codes), "z2_kl": kl / len(codes)}


@torch.no_grad()
def encode_all(model, data) -> dict:
    """M1's encoder outputs (the raw parameters of its posterior) for the grey-level images of every split."""
    device = next(model.parameters()).device
    return {split: model.encoder(getattr(data, f"{split}_x").to(device)) for split in ("train", "val", "test")}


def run(config: M1M2Config, *, m1_dir="results/mnist", data_dir=None, cache_dir=None, progress: bool = True) -> dict:
    """Train (or reuse) M1, train M2 on its codes, report the test accuracy of M2's classifier.

    M1 is looked up in the MNIST grid's model store under ``m1_dir`` (see :func:`m1_path`) and
    trained and stored there if it is missing or was trained with another configuration.
    """
    start = time.time()
    m1_config = config.m1_config()
    data = load_data(m1_config, data_dir=data_dir, cache_dir=cache_dir)
    path = m1_path(m1_dir, config)
    m1 = load_model(path, m1_config)
    if m1 is None:
        checkpoint = path.parent.parent / "checkpoints" / f"m1_{path.stem}.pt"
        m1, _ = train_model(m1_config, data, checkpoint=checkpoint, progress=progress)
        save_model(path, m1, m1_config)
        checkpoint.unlink(missing_ok=True)
    m1.eval()
    raw = encode_all(m1, data)
    codes = {split: m1.latent.point(m1.latent.posterior(r)) for split, r in raw.items()}  # means / mean directions
    if config.m1_codes == "sample":
        # as Kingma et al.'s code does: every step sees z1 ~ q(z1 | x) afresh, not its mean
        train, transform = raw["train"], lambda r: m1.latent.posterior(r).sample()
    else:
        train, transform = codes["train"], None
    labelled = balanced_labels(data.train_y, config.labels, config.seed)
    torch.manual_seed(config.seed)
    m2 = M2(m1.latent.code_dim, NUM_CLASSES, latent_family(config.m2, config.z2),
            data=config.m2_data, hidden=config.m2_hidden)
    labelled_weight = config.labels / len(train) if config.labelled_weight is None else config.labelled_weight
    objective = m2_objective(train[labelled].to(config.device), data.train_y[labelled].to(config.device),
                             alpha=config.alpha, labelled_weight=labelled_weight, transform=transform)
    # validation accuracy is recorded every epoch, whichever figure picks the epoch
    fitted = fit(m2, train, raw["val"] if transform else codes["val"], config.m2_train_config(),
                 objective=objective, transform=transform,
                 monitor=lambda model: {"accuracy": accuracy(model, codes["val"], data.val_y)},
                 select=f"val_{config.m2_select}", progress=progress,
                 desc=f"M2 {config.m1}+{config.m2} z1={config.z1} z2={config.z2}")
    metrics = {"test_accuracy": accuracy(m2, codes["test"], data.test_y), "m2_best_epoch": fitted["best_epoch"],
               **require_finite({f"test_{k}": v for k, v in m2_diagnostics(m2, codes["test"], data.test_y).items()},
                                "the trained M2 on the test set")}
    return {"config": asdict(config), "metrics": metrics,
            "history": fitted["history"], "wall_time": time.time() - start}


# --- Table 3 -------------------------------------------------------------------------------------------


def record_path(out_dir, config: M1M2Config) -> Path:
    name = {v: k for k, v in CONFIGURATIONS.items()}[(config.m1, config.m2)].replace("+", "")
    spheres = f"_spheres{config.spheres}" if config.spheres > 1 else ""
    return Path(out_dir) / config.profile / f"{name}_z1{config.z1}{spheres}_z2{config.z2}_seed{config.seed}.json"


def write_run(config: M1M2Config, path, *, m1_dir, data_dir=None, cache_dir=None) -> None:
    from svae.records import write_record

    record = run(config, m1_dir=m1_dir, data_dir=data_dir, cache_dir=cache_dir, progress=False)
    write_record(path, command="svae reproduce m1m2", config=record["config"], metrics=record["metrics"],
                 wall_time=record["wall_time"], history=record["history"])


def reproduce(*, profile: str = "fast", seeds: int = 1, jobs: int = 1, out_dir="results/m1m2", m1_dir="results/mnist",
              table=None, data_dir=None, cache_dir=None, dims=DIMS, progress: bool = True, train: bool = True,
              reuse: str = "same-code") -> str:
    """N+N, S+S and S+N for z1, z2 in {5, 10, 50}: train (M1 shared between the M2 runs), write Table 3.

    With ``train=False`` only the table is written, from the records present so far.
    """
    from svae.data.mnist import load_mnist
    from svae.experiments.grid import run_grid

    configs = [M1M2Config(m1=m1, m2=m2, z1=z1, z2=z2, seed=s, profile=profile, **PROFILES[profile])
               for z1 in dims for z2 in dims for m1, m2 in CONFIGURATIONS.values() for s in range(seeds)]
    if train:
        load_mnist(data_dir=data_dir, cache_dir=cache_dir)
        run_one = partial(write_run, m1_dir=m1_dir, data_dir=data_dir, cache_dir=cache_dir)
        # M1 models first (one per family, z1 and seed), so that parallel M2 runs never train the same M1
        m1_first = {(c.m1, c.z1, c.seed): c for c in configs}
        run_grid(configs, partial(record_path, out_dir), run_one, jobs=jobs, desc="M1 + M2 runs", progress=progress,
                 reuse=reuse, first=list(m1_first.values()), command="svae reproduce m1m2")
    return write_table(configs, out_dir, Path(table or f"{out_dir}.md"), profile)


def write_table(configs, out_dir, table, profile: str) -> str:
    from svae.experiments.grid import records_present, write_table
    from svae.experiments.paper import MNIST_TABLE3

    present, missing = records_present(configs, partial(record_path, out_dir))
    groups = {}
    for config, record in present:
        groups.setdefault((config.z1, config.z2, config.m1, config.m2), []).append(100 * record["metrics"]["test_accuracy"])
    counts = sorted({len(values) for values in groups.values()})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    names = list(CONFIGURATIONS)
    lines = [f"# Semi-supervised MNIST, 100 labels: Table 3 of Davidson et al. (2018), profile `{profile}`", "",
             f"Test accuracy (%) of M2's classifier, mean ± std over {seeds} seed(s); paper values in "
             "parentheses (unverified copies). Generated by `svae reproduce m1m2` from the records in "
             f"`{out_dir}/{profile}/`. Budget: M1 as `svae reproduce mnist --profile {profile}`, M2 "
             + ", ".join(f"{k} = {v}" for k, v in PROFILES[profile].items()) + ".", ""]
    if missing:
        lines += [f"Incomplete grid: {missing} of its {len(configs)} runs have no record yet (—).", ""]
    lines += ["| z1 | z2 | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    for z1 in sorted({c.z1 for c in configs}):
        for z2 in sorted({c.z2 for c in configs}):
            cells = []
            for name in names:
                values = groups.get((z1, z2, *CONFIGURATIONS[name]))
                if not values:
                    cells.append("—")
                    continue
                mean = statistics.mean(values)
                spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
                paper = MNIST_TABLE3.get((z1, z2), {}).get(name)
                cells.append(f"{mean:.1f}{spread}" + (f" ({paper:.1f})" if paper is not None else ""))
            lines.append(f"| {z1} | {z2} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    write_table(table, text)
    return text
