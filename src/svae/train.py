"""The training loop shared by the experiments: Adam, mini-batches, linear KL warm-up, early stopping
on the validation ELBO (or reconstruction, for an auto-encoder), the best model kept."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm

from svae.nn.objectives import elbo_terms
from svae.nn.vae import VAE


@dataclass
class TrainConfig:
    epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 64
    kl_weight: float = 1.0  # beta: the KL's weight once warm-up is over
    warmup_epochs: int = 0  # the KL weight grows linearly from 0 to kl_weight over these epochs
    patience: int | None = None  # stop after this many epochs without a better validation score
    correction: bool = False  # the rejection-sampling gradient correction (vMF posteriors)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.warmup_epochs < 0 or (self.patience is not None and self.patience < 1):
            raise ValueError("warmup_epochs must be >= 0 and patience None or >= 1")

    def kl_weight_at(self, epoch: int) -> float:
        """KL weight in (1-based) epoch ``epoch``: linear warm-up, then ``kl_weight``."""
        if self.warmup_epochs == 0:
            return self.kl_weight
        return self.kl_weight * min(1.0, epoch / self.warmup_epochs)


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, batch_size: int = 1000, transform: Callable | None = None) -> dict:
    """Mean ELBO, reconstruction and KL per example (for an AE: reconstruction only)."""
    model.eval()
    sums, count = {}, 0
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        batch = transform(batch) if transform else batch
        terms = elbo_terms(model, batch)
        for key in ("elbo", "recon", "kl"):
            if key in terms:
                sums[key] = sums.get(key, 0.0) + terms[key].double().sum().item()
        count += len(batch)
    return {key: value / count for key, value in sums.items()}


def fit(model: VAE, train_x: torch.Tensor, val_x: torch.Tensor, config: TrainConfig, *,
        transform: Callable | None = None, progress: bool = True, desc: str = "train") -> dict:
    """Train ``model`` in place; return the history and the best epoch (the model is left at it).

    ``transform`` is applied to every batch (e.g. dynamic binarisation); the validation score is
    the ELBO for a VAE and the reconstruction log-likelihood for an auto-encoder.
    """
    start_time = time.time()
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model.to(config.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    score_key = "elbo" if model.is_variational else "recon"
    history, best = [], {"score": -math.inf, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
    bar = tqdm(range(1, config.epochs + 1), desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for epoch in bar:
        model.train()
        kl_weight = config.kl_weight_at(epoch)
        order = torch.randperm(len(train_x), generator=generator)
        sums, count = {}, 0
        for first in range(0, len(order), config.batch_size):
            batch = train_x[order[first:first + config.batch_size]].to(config.device)
            batch = transform(batch) if transform else batch
            terms = elbo_terms(model, batch, kl_weight=kl_weight, correction=config.correction)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            for key in ("elbo", "recon", "kl"):
                if key in terms:
                    sums[key] = sums.get(key, 0.0) + terms[key].detach().sum().item()
            count += len(batch)
        train = {f"train_{k}": v / count for k, v in sums.items()}
        val = {f"val_{k}": v for k, v in evaluate(model, val_x.to(config.device), transform=transform).items()}
        history.append({"epoch": epoch, "kl_weight": kl_weight, **train, **val})
        score = val[f"val_{score_key}"]
        if score > best["score"]:
            best = {"score": score, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        bar.set_postfix({k.replace("train_", ""): f"{v:.2f}" for k, v in train.items()} | {"val": f"{score:.2f}"})
        if config.patience is not None and epoch - best["epoch"] >= config.patience:
            break
    model.load_state_dict(best["state"])
    return {"config": asdict(config), "history": history, "best_epoch": best["epoch"],
            "wall_time": time.time() - start_time}
