"""Figures from run records: latent spaces, learning curves, ROC curves. Matplotlib, headless (Agg).

Every function writes the figure to ``path``; the format follows the suffix (``.png`` or ``.svg``).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import numpy as np  # noqa: E402

from svae.atomic import atomic_write  # noqa: E402

COLORS = np.array(["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                   "#7f7f7f", "#bcbd22", "#17becf"])
FORMATS = (".png", ".svg")


def _save(fig, path) -> Path:
    path = Path(path)
    try:
        if path.suffix not in FORMATS:
            raise ValueError(f"figure path must end in {' or '.join(FORMATS)}, got {path}")
        # atomic: an interrupted run never leaves half a figure; the temporary name hides the format
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix[1:], dpi=130, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _label_legend(fig, labels, names=None) -> None:
    """A figure legend (outside the panels) naming each label's colour: ``names`` maps a label to its
    name, default ``label k``."""
    from matplotlib.lines import Line2D

    values = sorted(set(np.asarray(labels).tolist()))
    names = names or {}
    handles = [Line2D([], [], ls="", marker="o", ms=5, color=COLORS[v % len(COLORS)], label=names.get(v, f"label {v}"))
               for v in values]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 10), fontsize=8, frameon=False)


def latent_spaces(panels: dict, labels, path, *, title: str | None = None, label_names: dict | None = None,
                  axis_labels=("$z_1$", "$z_2$")) -> Path:
    """One scatter panel per entry of ``panels`` (name -> (n, 2) codes), coloured by ``labels``, with a
    legend of the labels (``label_names``: label -> name) below the panels and the title above them."""
    labels = np.asarray(labels)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.8), squeeze=False, layout="constrained")
    for ax, (name, codes) in zip(axes[0], panels.items()):
        codes = np.asarray(codes)
        ax.scatter(codes[:, 0], codes[:, 1], s=3, c=COLORS[labels % len(COLORS)], alpha=0.6, linewidths=0)
        ax.set_title(name, fontsize=10)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel(axis_labels[0], fontsize=8), ax.set_ylabel(axis_labels[1], fontsize=8, labelpad=1)
        ax.tick_params(labelsize=7)
    _label_legend(fig, labels, label_names)
    if title:
        fig.suptitle(title, fontsize=11)  # constrained layout keeps it clear of the panel titles
    return _save(fig, path)


def sphere_latents(codes, labels, path, *, title: str | None = None, label_names: dict | None = None) -> Path:
    """Codes on S^1 (2 columns: a circle) or S^2 (3 columns: two hemispheres, seen from +z and -z),
    coloured by ``labels``, with their legend below."""
    codes, labels = np.asarray(codes), np.asarray(labels)
    colors = COLORS[labels % len(COLORS)]
    if codes.shape[1] == 2:
        return latent_spaces({title or "codes on S^1": codes}, labels, path, label_names=label_names)
    if codes.shape[1] != 3:
        raise ValueError(f"sphere plots need 2- or 3-dimensional codes, got {codes.shape[1]}")
    fig, axes = plt.subplots(1, 2, figsize=(7, 4.1), layout="constrained")
    for ax, sign, name in zip(axes, (1, -1), ("upper hemisphere (z > 0)", "lower hemisphere (z < 0)")):
        keep = np.sign(codes[:, 2]) == sign
        ax.add_patch(plt.Circle((0, 0), 1, fill=False, color="0.7"))
        ax.scatter(codes[keep, 0], codes[keep, 1], s=2, c=colors[keep], alpha=0.6, linewidths=0)
        ax.set_title(name, fontsize=10)
        ax.set_xlim(-1.05, 1.05), ax.set_ylim(-1.05, 1.05), ax.set_aspect("equal")
        ax.set_xlabel("$z_1$", fontsize=8), ax.set_ylabel("$z_2$", fontsize=8, labelpad=1), ax.tick_params(labelsize=7)
    _label_legend(fig, labels, label_names)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


# Panels of learning curves: a column's metric (its name less a train_/val_ prefix) -> panel title.
# Percentages are plotted x100.
CURVE_PANELS = {"elbo": "ELBO (nats)", "recon": "reconstruction (nats)", "kl": "KL (nats)", "loss": "training loss",
                "auc": "AUC (%)", "ap": "average precision (%)"}
PERCENT = ("auc", "ap")
SPLIT_STYLES = {"train": "-", "validation": "--"}


def _split_and_metric(column: str) -> tuple[str, str]:
    """``val_elbo`` -> (validation, elbo); ``train_kl`` and bare ``loss`` -> (train, ...)."""
    for prefix, split in (("train_", "train"), ("val_", "validation")):
        if column.startswith(prefix):
            return split, column[len(prefix):]
    return "train", column


def curves_figure(record: dict, from_epoch: int = 1):
    """The figure of :func:`learning_curves` (returned open, for inspection)."""
    from matplotlib.lines import Line2D

    curves = record.get("curves") or {"": record.get("curve") or record.get("history")}
    if not curves or not any(curves.values()):
        raise ValueError("the record has no per-epoch curve (keys 'curve', 'history' or 'curves')")
    if isinstance(from_epoch, bool) or not isinstance(from_epoch, int) or from_epoch < 1:
        raise ValueError(f"from_epoch must be an int >= 1, got {from_epoch!r}")
    epochs = [row["epoch"] for rows in curves.values() for row in rows or []]
    curves = {name: [row for row in rows or [] if row["epoch"] >= from_epoch] for name, rows in curves.items()}
    if not any(curves.values()):
        raise ValueError(f"from epoch {from_epoch} leaves no epoch to plot: the record has epochs "
                         f"{min(epochs)} to {max(epochs)}")
    columns = {c for rows in curves.values() for row in rows for c in row}
    panels = [CURVE_PANELS[metric] for metric in CURVE_PANELS if any(_split_and_metric(c)[1] == metric for c in columns)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False, layout="constrained")
    axes = dict(zip(panels, axes[0]))
    colours = {name: f"C{i}" for i, name in enumerate(curves)}
    splits = set()
    for name, rows in curves.items():
        for column in sorted({c for row in rows for c in row}):
            split, metric = _split_and_metric(column)
            if metric not in CURVE_PANELS:
                continue
            kept = [row for row in rows if column in row]
            scale = 100 if metric in PERCENT else 1
            axes[CURVE_PANELS[metric]].plot([row["epoch"] for row in kept], [scale * row[column] for row in kept],
                                            color=colours[name], ls=SPLIT_STYLES[split], lw=1)
            splits.add(split)
    for title, ax in axes.items():
        ax.set_title(title, fontsize=10), ax.set_xlabel("epoch"), ax.tick_params(labelsize=7)
    handles = [Line2D([], [], color=colours[name], lw=1.5, label=name) for name in curves if name]
    handles += [Line2D([], [], color="0.3", ls=SPLIT_STYLES[split], lw=1, label=split)
                for split in SPLIT_STYLES if split in splits]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8), fontsize=8, frameon=False)
    return fig


def learning_curves(record: dict, path, *, from_epoch: int = 1) -> Path:
    """ELBO, reconstruction, KL (nats), loss, AUC and AP (%) per epoch, one panel each, from a
    record's ``curve``/``history`` (or several runs under ``curves``, one colour each): train as solid
    lines, validation dashed, the legend below the panels. ``from_epoch`` skips the epochs before it
    (the first epochs of a VAE are off the scale of the rest)."""
    return _save(curves_figure(record, from_epoch), path)


def roc_curves(curves: dict, path) -> Path:
    """ROC curves: ``curves`` maps a label to (positive scores, negative scores)."""
    if not curves:
        raise ValueError("roc_curves: curves must map at least one label to (positive scores, negative scores)")
    fig, ax = plt.subplots(figsize=(4, 4))
    for name, (pos, neg) in curves.items():
        scores = np.concatenate([pos, neg])
        labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
        order = np.argsort(-scores, kind="stable")
        tpr = np.concatenate([[0], np.cumsum(labels[order]) / len(pos)])
        fpr = np.concatenate([[0], np.cumsum(1 - labels[order]) / len(neg)])
        ax.plot(fpr, tpr, lw=1, label=name)
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
    ax.set_xlabel("false positive rate"), ax.set_ylabel("true positive rate"), ax.legend(fontsize=7)
    return _save(fig, path)
