"""Link prediction with variational graph auto-encoders (the paper's Table 4; Kipf & Welling's protocol).

Train on 85 % of the edges of Cora, CiteSeer or PubMed with full-batch Adam, pick the epoch with
the best validation AUC, report test AUC and AP there.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from functools import partial

import torch

from svae.data.link_split import kipf_split
from svae.data.planetoid import dataset_name, load_planetoid
from svae.nn.graph import GCNEncoder, ScaledInnerProductDecoder, VariationalGAE, message_passing_graph
from svae.nn.latent import FAMILIES, latent_family
from svae.progress import progress as progress_bar
from svae.train import NonFiniteLossError

LOSSES = ("dense", "negative")


@dataclass
class LinkPredConfig:
    dataset: str = "cora"
    latent: str = "normal"
    seed: int = 0
    epochs: int = 200
    lr: float = 0.01
    hidden: int = 32
    latent_dim: int = 16
    spheres: int = 1  # the spherical families' latent_dim split over a product of spheres (svae.nn.product)
    dropout: float = 0.0
    normalize_features: bool = False
    loss: str = "dense"
    correction: bool = False
    scale: float = 1.0
    learn_scale: bool = False
    val_ratio: float = 0.05
    test_ratio: float = 0.10
    device: str = "cpu"

    def __post_init__(self):
        dataset_name(self.dataset)  # raises for an unknown data set
        if self.latent not in FAMILIES:
            raise ValueError(f"latent must be one of {list(FAMILIES)}, got {self.latent!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {self.loss!r}")
        for name in ("epochs", "hidden", "latent_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        latent_family(self.latent, self.latent_dim, spheres=self.spheres)  # raises for a bad number of spheres
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class LinkPredData:
    """A graph and its split, on a device; ``train_graph`` is what the encoder propagates over
    (the training edges only, see :func:`svae.nn.graph.message_passing_graph`)."""

    x: torch.Tensor
    split: object
    train_graph: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.train_graph = message_passing_graph(self.split.train_edge_index.to(self.x.device), self.split.num_nodes)


def build_model(config: LinkPredConfig, num_features: int) -> VariationalGAE:
    options = {"scale": "exp"} if config.latent == "normal" else {}  # Kipf's log standard deviation
    latent = latent_family(config.latent, config.latent_dim, spheres=config.spheres, **options)
    encoder = GCNEncoder(num_features, config.hidden, latent.num_params, config.dropout)
    decoder = ScaledInnerProductDecoder(config.scale, learnable=config.learn_scale)
    return VariationalGAE(encoder, latent, decoder)


def prepare(config: LinkPredConfig, *, data_dir=None, cache_dir=None) -> LinkPredData:
    graph = load_planetoid(config.dataset, data_dir=data_dir, cache_dir=cache_dir)
    split = kipf_split(graph.edge_index, graph.num_nodes, val_ratio=config.val_ratio,
                       test_ratio=config.test_ratio, seed=config.seed)
    x = graph.x
    if config.normalize_features:  # rows summing to 1, as in Kipf & Welling's GCN (not their GAE)
        x = x / x.sum(1, keepdim=True).clamp_min(1)
    return LinkPredData(x.to(config.device), split)


def training_loss(model: VariationalGAE, data: LinkPredData, config: LinkPredConfig) -> tuple[torch.Tensor, dict]:
    """Reconstruction + KL / N (Kipf), with the rejection-gradient correction if asked for."""
    split = data.split
    z = model.encode(data.x, data.train_graph)
    train_pos = split.train_pos.to(z.device)
    per_node = config.correction and config.latent == "vmf"
    if config.loss == "dense":
        recon = model.dense_recon_loss(z, train_pos, per_node=per_node)
    else:
        neg = torch.randint(0, split.num_nodes, train_pos.shape, device=z.device)
        recon = model.recon_loss(z, train_pos, neg, per_node=per_node)
    if per_node:
        # Rao-Blackwellised correction: each node's log-weight times the loss terms it appears in.
        recon, share = recon
        weight = model.latent.rejection_log_weight(model.q, z)
        surrogate = (share * (weight - weight.detach())).sum()
    else:
        surrogate = 0.0
    kl = model.kl_loss() / split.num_nodes
    loss = recon + kl
    return loss + surrogate, {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}


def evaluate(model: VariationalGAE, data: LinkPredData, part: str) -> tuple[float, float]:
    """(AUC, AP) on the ``part`` edges; NonFiniteLossError if the model's embeddings are not finite."""
    model.eval()
    z = model.embed(data.x, data.train_graph)
    if not bool(torch.isfinite(z).all()):
        raise NonFiniteLossError("non-finite node embeddings")
    split = data.split
    pos, neg = getattr(split, f"{part}_pos").to(z.device), getattr(split, f"{part}_neg").to(z.device)
    return model.test(z, pos, neg)


def run(config: LinkPredConfig, *, data_dir=None, cache_dir=None, progress: bool = True) -> dict:
    """Train, select the epoch by validation AUC, evaluate on the test edges; return a record."""
    start = time.time()
    torch.manual_seed(config.seed)
    data = prepare(config, data_dir=data_dir, cache_dir=cache_dir)
    model = build_model(config, data.x.shape[1]).to(config.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    curve, best = [], {"val_auc": -1.0}
    bar = progress_bar(range(1, config.epochs + 1), desc=f"{config.dataset}/{config.latent}", enabled=progress)
    for epoch in bar:
        model.train()
        optimizer.zero_grad()
        loss, parts = training_loss(model, data, config)
        # one full-batch step per epoch: step = epoch
        if not math.isfinite(parts["loss"]) or not bool(torch.isfinite(loss)):
            raise NonFiniteLossError(f"non-finite loss ({parts['loss']}) at epoch {epoch}, step {epoch}: the run "
                                     f"diverged (a smaller --lr?); no test metric was computed")
        loss.backward()
        optimizer.step()
        try:
            val_auc, val_ap = evaluate(model, data, "val")
        except NonFiniteLossError as error:
            raise NonFiniteLossError(f"{error} after epoch {epoch}, step {epoch}: the run diverged (a smaller --lr?); "
                                     f"no test metric was computed") from None
        curve.append({"epoch": epoch, **parts, "val_auc": val_auc, "val_ap": val_ap})
        if val_auc > best["val_auc"]:
            best = {"epoch": epoch, "val_auc": val_auc, "val_ap": val_ap, "state": copy.deepcopy(model.state_dict())}
        bar.set_postfix(loss=f"{parts['loss']:.4f}", val_auc=f"{val_auc:.4f}", best=f"{best['val_auc']:.4f}")
    model.load_state_dict(best["state"])
    test_auc, test_ap = evaluate(model, data, "test")
    scores = test_scores(model, data)
    metrics = {"test_auc": test_auc, "test_ap": test_ap, "val_auc": best["val_auc"], "val_ap": best["val_ap"],
               "best_epoch": best["epoch"]}
    return {"config": asdict(config), "metrics": metrics, "curve": curve, "test_scores": scores,
            "wall_time": time.time() - start}


@torch.no_grad()
def test_scores(model: VariationalGAE, data: LinkPredData) -> dict:
    """Decoder logits of the test edges and non-edges (for ROC curves)."""
    model.eval()
    z = model.embed(data.x, data.train_graph)
    return {part: model.decoder.logits(z, getattr(data.split, f"test_{part}").to(z.device)).tolist()
            for part in ("pos", "neg")}


# --- the paper's table: every data set x latent family x seed, resumable ---------------------------

REPRODUCE_LATENTS = ("normal", "vmf", "power")


def tuned_config(dataset: str, latent: str, seed: int, **overrides) -> LinkPredConfig:
    """The committed hyper-parameters for (dataset, latent) (see svae/experiments/tuned.py)."""
    from svae.experiments.tuned import LINKPRED

    return LinkPredConfig(dataset=dataset, latent=latent, seed=seed, **{**LINKPRED.get((dataset, latent), {}), **overrides})


def record_path(out_dir, config: LinkPredConfig):
    from pathlib import Path

    suffix = ("_corrected" if config.correction else "") + (f"_spheres{config.spheres}" if config.spheres > 1 else "")
    return Path(out_dir) / f"{config.dataset}_{config.latent}{suffix}_seed{config.seed}.json"


def write_run(config: LinkPredConfig, path, *, data_dir=None, cache_dir=None) -> None:
    """Train one configuration and write its record to ``path``."""
    from svae.records import write_record

    record = run(config, data_dir=data_dir, cache_dir=cache_dir, progress=False)
    write_record(path, command="svae reproduce linkpred", config=record["config"], metrics=record["metrics"],
                 wall_time=record["wall_time"], curve=record["curve"], test_scores=record["test_scores"])


def reproduce_configs(seeds: int, datasets=("cora", "citeseer", "pubmed"), sphere_dof=(), **overrides) -> list[LinkPredConfig]:
    """N-VGAE, S-VGAE, PS-VGAE, and S-VGAE with the rejection-gradient correction, per data set and seed;
    for each ``k`` of ``sphere_dof``, also the S-VGAE with its tuned latent dimension split over
    ``latent_dim // k`` spheres (issue 9)."""
    variants = [(latent, False) for latent in REPRODUCE_LATENTS] + [("vmf", True)]
    configs = []
    for d in datasets:
        configs += [tuned_config(d, latent, s, correction=correction, **overrides)
                    for latent, correction in variants for s in range(seeds)]
        latent_dim = tuned_config(d, "vmf", 0, **overrides).latent_dim
        for spheres in dict.fromkeys(max(1, latent_dim // k) for k in sphere_dof):
            if spheres > 1:
                configs += [tuned_config(d, "vmf", s, spheres=spheres, **overrides) for s in range(seeds)]
    return configs


def reproduce(*, seeds: int = 10, jobs: int = 1, out_dir="results/linkpred", table="results/linkpred.md",
              datasets=("cora", "citeseer", "pubmed"), sphere_dof=(), data_dir=None, cache_dir=None,
              progress: bool = True, train: bool = True, reuse: str = "same-code", **overrides) -> str:
    """Run the grid (reusing records as ``reuse`` says, :mod:`svae.experiments.grid`), then write the table.

    With ``train=False`` only the table is written, from the grid's records present so far: an
    interrupted grid can be summarised honestly (each row states its number of seeds).
    ``overrides`` (e.g. ``epochs``) replace the tuned hyper-parameters in every run.
    """
    from svae.experiments.grid import run_grid

    configs = reproduce_configs(seeds, datasets, sphere_dof, **overrides)
    if train:
        for dataset in datasets:  # processed once, before any worker starts
            load_planetoid(dataset, data_dir=data_dir, cache_dir=cache_dir)
        run_grid(configs, partial(record_path, out_dir), partial(write_run, data_dir=data_dir, cache_dir=cache_dir),
                 jobs=jobs, desc="linkpred runs", progress=progress, reuse=reuse, command="svae reproduce linkpred")
    return write_table(configs, out_dir, table, sphere_dof)


def latent_space(record: dict) -> str:
    """The product of spheres of a record's configuration, e.g. ``(S^6)^2 × (S^5)^4``."""
    from svae.experiments.highdim import latent_space as named

    config = record["config"]
    return named(config["latent"], config["latent_dim"], config["spheres"])


def write_table(configs, out_dir, table, sphere_dof=()) -> str:
    """results/linkpred.md: mean +- std over seeds next to the paper's Table 4."""
    import statistics
    from pathlib import Path

    from svae.experiments.paper import KIPF_VGAE, LINKPRED
    from svae.experiments.grid import records_present, write_table

    present, missing = records_present(configs, partial(record_path, out_dir))
    groups = {}
    for config, record in present:
        groups.setdefault((config.dataset, config.latent, config.correction, config.spheres), []).append(record)
    names = {("normal", False): "N-VGAE", ("vmf", False): "S-VGAE", ("power", False): "PS-VGAE",
             ("vmf", True): "S-VGAE + g_cor"}
    lines = [
        "# Link prediction: Table 4 of Davidson et al. (2018), reproduced",
        "",
        "Test AUC and AP in %, mean ± std over seeds (each seed is a new 85/5/10 edge split and a new",
        "initialisation), at the epoch with the best validation AUC. Hyper-parameters: "
        "`src/svae/experiments/tuned.py`. Generated by `svae reproduce linkpred"
        + (f" --sphere-dof {' '.join(map(str, sphere_dof))}" if sphere_dof else "") + f"` from the records in `{out_dir}/`.",
        "",
        "| dataset | model | seeds | AUC | paper AUC | Δ AUC | AP | paper AP | Δ AP |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (dataset, latent, correction, spheres), records in groups.items():
        cells = []
        for metric in ("auc", "ap"):
            values = [100 * r["metrics"][f"test_{metric}"] for r in records]
            mean = statistics.mean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            paper = LINKPRED.get((dataset, latent), {}).get(metric) if spheres == 1 else None
            if paper:
                verdict = "✓" if mean >= paper[0] - paper[1] else "✗"
                cells += [f"{mean:.1f} ± {std:.1f}", f"{paper[0]:.1f} ± {paper[1]:.1f}", f"{mean - paper[0]:+.1f} {verdict}"]
            else:
                cells += [f"{mean:.1f} ± {std:.1f}", "—", "—"]
        name = names[latent, correction] + (f", {spheres} spheres ({latent_space(records[0])})" if spheres > 1 else "")
        lines.append(f"| {dataset} | {name} | {len(records)} | " + " | ".join(cells) + " |")
    if missing:
        lines += ["", f"Incomplete grid: {missing} of its {len(configs)} runs have no record yet; rows show the seeds done."]
    lines += ["", "✓: matched within the paper's reported std, or better. Kipf & Welling's own VGAE (AUC/AP): "
              + ", ".join(f"{d} {a}/{p}" for d, (a, p) in KIPF_VGAE.items()) + "."]
    text = "\n".join(lines) + "\n"
    write_table(table, text)
    return text
