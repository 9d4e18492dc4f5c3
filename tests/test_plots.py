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


@pytest.fixture
def captured(monkeypatch):
    """The figures the plot functions would save, kept open for inspection (drawn, so that text has
    its final place)."""
    figures = []

    def keep(fig, path):
        fig.canvas.draw()
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    yield figures
    for fig in figures:
        plots.plt.close(fig)


def _history(epochs=range(1, 11)):
    return [{"epoch": e, "train_elbo": -100 + e, "val_elbo": -101 + e, "train_recon": -90 + e, "val_recon": -91 + e,
             "train_kl": 10.0, "val_kl": 10.5} for e in epochs]


def test_learning_curves_panels_units_styles_and_legend(captured):
    plots.learning_curves({"curves": {"N-VAE": _history(), "S-VAE": _history()}}, "c.png", from_epoch=4)
    fig = captured[0]
    assert [ax.get_title() for ax in fig.axes] == ["ELBO (nats)", "reconstruction (nats)", "KL (nats)"]
    for ax in fig.axes:
        assert ax.get_legend() is None  # no legend over the curves
        styles = sorted(line.get_linestyle() for line in ax.get_lines())
        assert styles == ["-", "-", "--", "--"]  # train solid, validation dashed, for both models
        assert all(min(line.get_xdata()) == 4 for line in ax.get_lines())  # --from-epoch
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["N-VAE", "S-VAE", "train", "validation"]
    legend_box = legend.get_window_extent()
    assert all(legend_box.y1 <= ax.get_window_extent().y0 for ax in fig.axes)  # below the panels


def test_link_prediction_curves_show_auc_and_ap_in_percent(captured):
    curve = [{"epoch": e, "loss": 1 / e, "recon": 1 / e, "kl": 0.01, "val_auc": 0.8 + e / 100, "val_ap": 0.85}
             for e in range(1, 6)]
    plots.learning_curves({"curve": curve}, "c.png")
    titles = [ax.get_title() for ax in captured[0].axes]
    assert titles == ["reconstruction (nats)", "KL (nats)", "training loss", "AUC (%)", "average precision (%)"]
    auc = captured[0].axes[3].get_lines()[0]
    assert auc.get_linestyle() == "--" and auc.get_ydata()[0] == pytest.approx(81.0)


def test_from_epoch_past_the_last_epoch_is_a_clear_error():
    with pytest.raises(ValueError, match="from epoch 20 leaves no epoch to plot: the record has epochs 1 to 10"):
        plots.learning_curves({"history": _history()}, "c.png", from_epoch=20)


def test_latent_figure_has_a_legend_axis_labels_and_a_clear_title(captured):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    panels = {"truth": rng.normal(size=(60, 2)), "S-VAE": rng.normal(size=(60, 2))}
    plots.latent_spaces(panels, labels, "l.png", title="coloured by component",
                        label_names={0: "component 1", 1: "component 2", 2: "component 3"})
    fig = captured[0]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["component 1", "component 2", "component 3"]
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    title = fig._suptitle.get_window_extent()
    assert all(title.y0 >= ax.title.get_window_extent().y1 for ax in fig.axes)  # no overlap with the panel titles
    assert all(legend.get_window_extent().y1 <= ax.get_window_extent().y0 for ax in fig.axes)
    plots.sphere_latents(rng.normal(size=(60, 3)) / 2, labels, "s.png")
    assert [t.get_text() for t in captured[1].legends[0].get_texts()] == ["label 0", "label 1", "label 2"]


def test_plot_curves_from_epoch_on_the_command_line(tmp_path):
    path = write_record(tmp_path / "run.json", command="svae mnist", metrics={}, wall_time=1, config={},
                        history=_history())
    run = [sys.executable, "-m", "svae.cli", "plot"]
    ok = subprocess.run(run + ["curves", str(path), "--from-epoch", "3"], capture_output=True, text=True)
    assert ok.returncode == 0 and (tmp_path / "run.curves.png").stat().st_size > 1000, ok.stderr
    for bad in (["curves", str(path), "--from-epoch", "0"], ["roc", str(path), "--from-epoch", "3"]):
        failed = subprocess.run(run + bad, capture_output=True, text=True)
        assert failed.returncode == 2 and "--from-epoch takes an epoch >= 1 and applies to plot curves only" in failed.stderr
    late = subprocess.run(run + ["curves", str(path), "--from-epoch", "11"], capture_output=True, text=True)
    assert late.returncode == 2 and "leaves no epoch to plot" in late.stderr


def test_plot_roc_draws_several_records_in_one_figure(tmp_path, captured):
    from svae.cli import main

    paths = [write_record(tmp_path / f"{latent}.json", command="svae linkpred", metrics={}, wall_time=1,
                          config={"dataset": "cora", "latent": latent, "seed": 0},
                          test_scores={"pos": [1.0, 2.0, 0.5], "neg": [0.0, 0.7, -1.0]}) for latent in ("vmf", "normal")]
    assert main(["plot", "roc", *map(str, paths), "--out", str(tmp_path / "both.png")]) == 0
    (fig,) = captured
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["cora vmf seed 0", "cora normal seed 0"]
    with pytest.raises(SystemExit):
        main(["plot", "curves", *map(str, paths), "--out", str(tmp_path / "x.png")])
