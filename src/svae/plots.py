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


def latent_spaces(panels: dict, labels, path, *, title: str | None = None) -> Path:
    """One scatter panel per entry of ``panels`` (name -> (n, 2) codes), coloured by ``labels``."""
    labels = np.asarray(labels)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.3), squeeze=False)
    for ax, (name, codes) in zip(axes[0], panels.items()):
        codes = np.asarray(codes)
        ax.scatter(codes[:, 0], codes[:, 1], s=3, c=COLORS[labels % len(COLORS)], alpha=0.6, linewidths=0)
        ax.set_title(name, fontsize=10)
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def sphere_latents(codes, labels, path, *, title: str | None = None) -> Path:
    """Codes on S^1 (2 columns: a circle) or S^2 (3 columns: two hemispheres, seen from +z and -z)."""
    codes, labels = np.asarray(codes), np.asarray(labels)
    colors = COLORS[labels % len(COLORS)]
    if codes.shape[1] == 2:
        return latent_spaces({title or "codes on S^1": codes}, labels, path)
    if codes.shape[1] != 3:
        raise ValueError(f"sphere plots need 2- or 3-dimensional codes, got {codes.shape[1]}")
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
    for ax, sign, name in zip(axes, (1, -1), ("upper hemisphere (z > 0)", "lower hemisphere (z < 0)")):
        keep = np.sign(codes[:, 2]) == sign
        ax.add_patch(plt.Circle((0, 0), 1, fill=False, color="0.7"))
        ax.scatter(codes[keep, 0], codes[keep, 1], s=2, c=colors[keep], alpha=0.6, linewidths=0)
        ax.set_title(name, fontsize=10)
        ax.set_xlim(-1.05, 1.05), ax.set_ylim(-1.05, 1.05), ax.set_aspect("equal")
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def learning_curves(record: dict, path) -> Path:
    """ELBO, reconstruction and KL per epoch from a record's ``curve``/``history`` (or several, under ``curves``)."""
    curves = record.get("curves") or {"": record.get("curve") or record.get("history")}
    if not curves or not any(curves.values()):
        raise ValueError("the record has no per-epoch curve (keys 'curve', 'history' or 'curves')")
    keys = [k for k in ("elbo", "recon", "kl", "loss", "val_auc") if any(
        any(k == key or key.endswith(f"_{k}") for key in rows[0]) for rows in curves.values() if rows)]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, rows in curves.items():
            for column in sorted({c for c in rows[0] if c == key or c.endswith(f"_{key}")}):
                values = [row[column] for row in rows]
                ax.plot([row["epoch"] for row in rows], values, label=f"{name} {column}".strip(), lw=1)
        ax.set_xlabel("epoch"), ax.set_title(key)
        ax.legend(fontsize=6)
    return _save(fig, path)


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
