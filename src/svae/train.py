"""The training loop shared by the experiments.

Adam, mini-batches, a linear KL warm-up, early stopping on the validation ELBO (or the
reconstruction, for an auto-encoder) with the best model kept, an atomic checkpoint after every
epoch and bit-for-bit resumption from it, a stop with a clear message at the first non-finite
loss or validation figure (the last finite epoch's checkpoint is kept), a progress bar with the
running loss, ELBO, reconstruction and KL, and data-parallel training over processes
(``torchrun``; gloo on CPU, nccl on GPU).

Randomness is tied to the data, not to the process: the shuffle of epoch e comes from a
generator seeded by (seed, e), and micro-batch s of step t draws its sampling noise and its
binarisation from the global RNG seeded by (seed, t, s); every epoch's validation uses the same
random numbers. So a run resumes exactly, and a run on W processes (each taking every W-th
micro-batch of a step, gradients averaged) computes what a single process with
``micro_batches = W`` computes, up to floating-point reduction order.
"""
from __future__ import annotations

import copy
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from svae.atomic import atomic_write
from svae.nn.objectives import elbo_terms
from svae.nn.vae import VAE
from svae.progress import progress as progress_bar
from svae.records import config_differences


@dataclass
class TrainConfig:
    epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 64
    micro_batches: int = 1  # each batch is split into this many micro-batches (gradient accumulation)
    kl_weight: float = 1.0  # beta: the KL's weight once warm-up is over
    warmup_epochs: int = 0  # the KL weight grows linearly from 0 to kl_weight over these epochs
    patience: int | None = None  # stop after this many epochs without a better validation score
    correction: bool = False  # the rejection-sampling gradient correction (vMF posteriors)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "micro_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.micro_batches > self.batch_size:
            raise ValueError(f"micro_batches ({self.micro_batches}) must not exceed batch_size ({self.batch_size})")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.warmup_epochs < 0 or (self.patience is not None and self.patience < 1):
            raise ValueError("warmup_epochs must be >= 0 and patience None or >= 1")

    def kl_weight_at(self, epoch: int) -> float:
        """KL weight in (1-based) epoch ``epoch``: linear warm-up, then ``kl_weight``."""
        if self.warmup_epochs == 0:
            return self.kl_weight
        return self.kl_weight * min(1.0, epoch / self.warmup_epochs)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss, or a trained model NaN or infinite test figures."""


def require_finite(metrics: dict, what: str) -> dict:
    """``metrics`` if every number in it is finite; else NonFiniteLossError naming the others.

    A diverged model's figures must not reach a record as numbers: tables average them, and a
    comparison with NaN silently picks a side.
    """
    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise NonFiniteLossError(f"{what}: non-finite figures {bad}; the model diverged, no record of them is written")
    return metrics


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from: unreadable, or written by another run."""


def stream_seed(*parts: int) -> int:
    """A seed for a random stream from integers (e.g. seed, step, micro-batch), below 2^63."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value * 6364136223846793005 + part + 1442695040888963407) % (1 << 63)
    return value


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, batch_size: int = 1000, transform: Callable | None = None,
             seed: int = 0, objective: Callable = elbo_terms) -> dict:
    """Mean ELBO, reconstruction and KL per example (for an AE: reconstruction only); the sampling
    and ``transform`` randomness comes from ``seed``, batch by batch, so that two models evaluated
    with one seed see the same random numbers in every batch (the CPU generator's state is restored
    afterwards)."""
    model.eval()
    sums, count = {}, 0
    with torch.random.fork_rng(devices=[]):
        for start in range(0, len(x), batch_size):
            torch.manual_seed(stream_seed(seed, start))
            batch = x[start:start + batch_size]
            batch = transform(batch) if transform else batch
            terms = objective(model, batch)
            for key in ("elbo", "recon", "kl"):
                if key in terms:
                    sums[key] = sums.get(key, 0.0) + terms[key].double().sum().item()
            count += len(batch)
    return {key: value / count for key, value in sums.items()}


def _model_signature(model: torch.nn.Module) -> dict:
    """What a checkpoint's model must share with the one resuming from it besides the training
    configuration: the latent family (a vMF and a Power Spherical head have the same shapes) and
    the shape of every parameter and buffer."""
    return {"latent": repr(getattr(model, "latent", None)),
            "shapes": {name: list(value.shape) for name, value in model.state_dict().items()}}


def _check_same_model(checkpoint: Path, theirs: dict | None, ours: dict) -> None:
    if theirs is None or theirs == ours:  # checkpoints written before signatures were kept are trusted
        return
    what = [f"latent {theirs['latent']}, not {ours['latent']}"] if theirs["latent"] != ours["latent"] else []
    names = sorted(theirs["shapes"].keys() | ours["shapes"].keys())
    what += [f"{name} of shape {theirs['shapes'].get(name)}, not {ours['shapes'].get(name)}" for name in names
             if theirs["shapes"].get(name) != ours["shapes"].get(name)][:3]
    raise CheckpointError(f"{checkpoint} was written for another model ({'; '.join(what)}); remove it to start "
                          f"this run afresh, or give another --checkpoint")


def _read_checkpoint(checkpoint: Path, device) -> dict:
    """The saved training state; CheckpointError if the file is not a whole checkpoint of :func:`fit`.
    (Checkpoints are written atomically, so a truncated one was cut short or changed by something else.)"""
    try:
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
    except Exception as error:  # torch.load raises what its unpickler and zip reader do: many types
        raise CheckpointError(f"{checkpoint} cannot be read as a checkpoint ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else 'truncated?'}); remove it to start "
                              f"this run afresh") from error
    if not isinstance(saved, dict) or not {"config", "model", "optimizer", "state"} <= saved.keys():
        raise CheckpointError(f"{checkpoint} is not a training checkpoint of svae; remove it or give another "
                              f"--checkpoint")
    return saved


def _kept_checkpoint(checkpoint: Path | None, epoch: int) -> str:
    if checkpoint is not None and epoch:
        return f"the checkpoint of epoch {epoch} is kept at {checkpoint}"
    return "no checkpoint was written"


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def fit(model: VAE, train_x: torch.Tensor, val_x: torch.Tensor, config: TrainConfig, *,
        transform: Callable | None = None, progress: bool = True, desc: str = "train",
        checkpoint: str | os.PathLike | None = None, stop_after: int | None = None,
        objective: Callable = elbo_terms, monitor: Callable[[torch.nn.Module], dict] | None = None,
        select: str | None = None) -> dict:
    """Train ``model`` in place; return the history and the best epoch (the model is left at it),
    and ``wall_time``, the training time over every session of a resumed run.

    ``objective(model, x, kl_weight=, correction=)`` returns a dict with the ``loss`` to minimise
    and per-example ``elbo``, ``recon``, ``kl`` (:func:`svae.nn.objectives.elbo_terms` by default).
    ``transform`` is applied to every micro-batch (e.g. dynamic binarisation). With
    ``checkpoint``, the state after every epoch is written there atomically, and an existing
    checkpoint is resumed from. ``stop_after`` ends the run after that many epochs of this call
    (as an interruption would; used to test resumption). Under ``torch.distributed`` (torchrun),
    process r takes micro-batches r, r + W, ... of every step (``micro_batches`` must be a
    multiple of the world size W) and their gradients are summed over the processes: each
    micro-batch's loss is weighted by its share of the batch, so the sum is the batch's gradient.

    The best epoch is the one with the highest ``select``, a key of the history (default
    ``val_elbo``, or ``val_recon`` for an auto-encoder). ``monitor(model)``, called after each
    epoch's validation with the model in eval mode, returns further validation figures, recorded
    as ``val_<name>`` and selectable (e.g. a classifier's validation accuracy).
    """
    start_time = time.time()
    rank, world = _world()
    if config.micro_batches % world:
        raise ValueError(f"micro_batches ({config.micro_batches}) must be a multiple of the number of "
                         f"processes ({world})")
    model.to(config.device)
    if world > 1:  # every process starts from rank 0's weights, as DistributedDataParallel does
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, 0)
    # The fused kernel updates all parameters in one operation: at batch 64 on a CPU the default
    # implementation's loop over the parameters costs a quarter to a third of a step
    # (docs/performance.md). A resumed run keeps the implementation its checkpoint was written
    # with (load_state_dict restores it).
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    select = select or ("val_elbo" if model.is_variational else "val_recon")
    state = {"epoch": 0, "step": 0, "history": [], "best": {"score": -math.inf, "epoch": 0,
                                                             "state": copy.deepcopy(model.state_dict())}}
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint is not None and checkpoint.exists():
        saved = _read_checkpoint(checkpoint, config.device)
        # the device is not part of the run: a checkpoint written on a GPU resumes on a CPU
        differing = config_differences(saved["config"], config, ignore=("device",))
        if differing:
            raise CheckpointError(f"{checkpoint} was written with another configuration: "
                                  + ", ".join(f"{k} = {theirs!r}, not {ours!r}" for k, theirs, ours in differing)
                                  + "; remove it to start this run afresh, or give another --checkpoint")
        _check_same_model(checkpoint, saved.get("model_signature"), _model_signature(model))
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        if rank == 0:
            print(f"{desc}: resuming from {checkpoint}, {state['epoch']} of at most {config.epochs} epochs done",
                  file=sys.stderr, flush=True)
    resumed_seconds = state.get("seconds", 0.0)  # training time of the sessions before this one
    parameters = [p for p in model.parameters() if p.requires_grad]
    done_epochs = state["epoch"]
    bar = progress_bar(range(done_epochs + 1, config.epochs + 1), desc=desc, enabled=progress and rank == 0,
                       initial=done_epochs, total=config.epochs)
    for epoch in bar:
        if stop_after is not None and epoch > done_epochs + stop_after:
            break
        if config.patience is not None and epoch - 1 - state["best"]["epoch"] >= config.patience:
            break
        model.train()
        kl_weight = config.kl_weight_at(epoch)
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(stream_seed(config.seed, epoch)))
        sums, count, shown = {}, 0, time.monotonic()
        for first in range(0, len(order), config.batch_size):
            state["step"] += 1
            batch_index = order[first:first + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            for shard, shard_index in enumerate(batch_index.tensor_split(config.micro_batches)):
                if shard % world != rank or len(shard_index) == 0:
                    continue
                torch.manual_seed(stream_seed(config.seed, state["step"], shard))
                x = train_x[shard_index].to(config.device)
                x = transform(x) if transform else x
                terms = objective(model, x, kl_weight=kl_weight, correction=config.correction)
                loss = terms["loss"] * len(shard_index) / len(batch_index)
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(f"non-finite loss ({loss.item()}) at epoch {epoch}, step "
                                             f"{state['step']}; training stopped, "
                                             f"{_kept_checkpoint(checkpoint, state['epoch'])}")
                loss.backward()
                sums["loss"] = sums.get("loss", 0.0) + terms["loss"].item() * len(shard_index)
                for key in ("elbo", "recon", "kl"):
                    if key in terms:
                        sums[key] = sums.get(key, 0.0) + terms[key].detach().sum().item()
                count += len(shard_index)
            if time.monotonic() - shown > 0.5:  # live running means, redrawn twice a second at most
                bar.set_postfix({k: f"{v / max(count, 1):.2f}" for k, v in sums.items()})
                shown = time.monotonic()
            if world > 1:
                for p in parameters:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    dist.all_reduce(p.grad)
            optimizer.step()
        totals = torch.tensor([count] + [sums.get(k, 0.0) for k in ("elbo", "recon", "kl")], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(totals)
        train = {f"train_{k}": totals[i + 1].item() / totals[0].item()
                 for i, k in enumerate(("elbo", "recon", "kl")) if k in sums}
        # One seed for every epoch: the epochs' scores then differ by what the model learnt, not by
        # the noise of a one-sample ELBO (0.05-0.09 nats on MNIST's 10 000 validation images,
        # scripts/validation_noise.py). Late in training that noise exceeds what an epoch gains,
        # and one lucky epoch's score could end the run while the model still improves.
        val = evaluate(model, val_x.to(config.device), transform=transform, seed=stream_seed(config.seed, 0),
                       objective=objective)
        if monitor is not None:
            with torch.no_grad():
                val |= monitor(model)
        val = {f"val_{k}": v for k, v in val.items()}
        if not all(math.isfinite(v) for v in val.values()):
            # a finite loss can still end in non-finite weights (an infinite gradient in an epoch's
            # last step); stop before that model is checkpointed
            raise NonFiniteLossError(f"non-finite validation figures {val} after epoch {epoch}; training "
                                     f"stopped, {_kept_checkpoint(checkpoint, state['epoch'])}")
        state["history"].append({"epoch": epoch, "kl_weight": kl_weight, **train, **val})
        if select not in val:
            raise KeyError(f"select={select!r} is not among the validation figures {sorted(val)}")
        score = val[select]
        if score > state["best"]["score"]:
            state["best"] = {"score": score, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        state["epoch"] = epoch
        state["seconds"] = resumed_seconds + time.time() - start_time
        if checkpoint is not None and rank == 0:
            saved = {"config": asdict(config), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "state": state, "model_signature": _model_signature(model)}
            atomic_write(checkpoint, lambda tmp: torch.save(saved, tmp))
        # the epoch's figures over all processes, the loss (as drawn live) over this one's micro-batches
        bar.set_postfix({"loss": f"{sums.get('loss', 0.0) / max(count, 1):.2f}"}
                        | {k.replace("train_", ""): f"{v:.2f}" for k, v in train.items()} | {"val": f"{score:.2f}"})
    finished = state["epoch"] >= config.epochs or (
        config.patience is not None and state["epoch"] - state["best"]["epoch"] >= config.patience)
    model.load_state_dict(state["best"]["state"])
    return {"config": asdict(config), "history": state["history"], "best_epoch": state["best"]["epoch"],
            "finished": finished, "wall_time": resumed_seconds + time.time() - start_time,
            "resumed_seconds": resumed_seconds}
