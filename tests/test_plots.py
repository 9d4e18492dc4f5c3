"""Figures from records (headless): learning curves, latent spaces on S^1 / S^2, ROC curves."""
import json
import subprocess
import sys

import numpy as np
import pytest

from svae import plots
from svae.records import write_record


def test_every_figure_kind_in_png_and_svg(tmp_path):
    rng = np.random.default_rng(0)
    curve = [{"epoch": e, "train_elbo": -100 + e, "val_elbo": -101 + e, "train_kl": 1.0, "train_recon": -99 + e}
             for e in range(1, 6)]
    for suffix in (".png", ".svg"):
        assert plots.learning_curves({"history": curve}, tmp_path / f"c{suffix}").stat().st_size > 1000
        circle = rng.normal(size=(50, 2))
        sphere = rng.normal(size=(50, 3))
        sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
        labels = rng.integers(0, 3, 50)
        assert plots.sphere_latents(circle / np.linalg.norm(circle, axis=1, keepdims=True), labels, tmp_path / f"s1{suffix}").exists()
        assert plots.sphere_latents(sphere, labels, tmp_path / f"s2{suffix}").exists()
        assert plots.roc_curves({"model": (rng.normal(1, size=40), rng.normal(size=40))}, tmp_path / f"r{suffix}").exists()


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.png or \.svg"):
        plots.roc_curves({"model": ([1.0], [0.0])}, tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="at least one label"):
        plots.roc_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no per-epoch curve"):
        plots.learning_curves({"metrics": {}}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="2- or 3-dimensional"):
        plots.sphere_latents(np.ones((3, 4)), [0, 1, 2], tmp_path / "x.png")


def test_plot_command_reads_records(tmp_path):
    path = write_record(tmp_path / "lp.json", command="svae linkpred", metrics={"test_auc": 0.9}, wall_time=1,
                        config={"dataset": "cora", "latent": "vmf", "seed": 0},
                        curve=[{"epoch": 1, "loss": 1.0, "val_auc": 0.8}, {"epoch": 2, "loss": 0.9, "val_auc": 0.85}],
                        test_scores={"pos": [1.0, 2.0, 0.5], "neg": [0.0, 0.7, -1.0]})
    for kind in ("curves", "roc"):
        out = subprocess.run([sys.executable, "-m", "svae.cli", "plot", kind, str(path)],
                             capture_output=True, text=True, check=True).stdout
        assert f"lp.{kind}.png" in out
    failed = subprocess.run([sys.executable, "-m", "svae.cli", "plot", "latent", str(path)], capture_output=True, text=True)
    assert failed.returncode == 2 and "the record has no latent codes and labels" in failed.stderr
