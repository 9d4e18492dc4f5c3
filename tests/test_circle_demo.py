"""The synthetic circle data, the recovery metrics, the five models, and `svae demo` end to end."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from svae.data.circle import MEANS, circle_splits, make_circle_data
from svae.experiments.circle import MODELS, CircleConfig, run
from svae.metrics import circular_alignment, distance_preservation, knn_accuracy


def test_generator_is_deterministic_and_shaped():
    a, b, c = make_circle_data(500, seed=1), make_circle_data(500, seed=1), make_circle_data(500, seed=2)
    assert a.x.shape == (500, 100) and a.angle.shape == a.component.shape == (500,)
    assert torch.equal(a.x, b.x) and torch.equal(a.angle, b.angle) and not torch.equal(a.x, c.x)
    assert set(a.component.tolist()) == {0, 1, 2} and (a.angle.abs() <= math.pi).all()
    train, val, test = circle_splits(300, 100, 100, seed=0)
    assert (len(train), len(val), len(test)) == (300, 100, 100)
    assert not torch.isin(test.x[:, 0], train.x[:, 0]).any()  # disjoint draws


def test_components_are_von_mises_around_their_means():
    data = make_circle_data(30000, seed=0)
    for j, mean in enumerate(MEANS):
        angles = data.angle[data.component == j].double()
        # E[cos(angle - mean)] = I_1(8)/I_0(8) = 0.93486 for a von Mises of concentration 8; 5 SE
        r = torch.cos(angles - mean).mean().item()
        assert abs(r - 0.934858) < 5 * torch.cos(angles - mean).std().item() / math.sqrt(len(angles))


def test_recovery_metrics_rank_a_perfect_embedding_above_a_random_one():
    data = make_circle_data(2000, seed=3)
    rotation = torch.tensor([[0.6, -0.8], [0.8, 0.6]])
    perfect = 3 * data.latent @ rotation * torch.tensor([1.0, -1.0])  # rotated, reflected, scaled
    noise = torch.randn(2000, 2)
    assert circular_alignment(data.angle, perfect) > 0.999 > 0.1 > circular_alignment(data.angle, noise)
    assert distance_preservation(data.latent, perfect) > 0.9999
    assert abs(distance_preservation(data.latent, noise)) < 0.05
    half = slice(0, 1000), slice(1000, 2000)
    assert knn_accuracy(perfect[half[0]], data.component[half[0]], perfect[half[1]], data.component[half[1]]) > 0.9
    assert knn_accuracy(noise[half[0]], data.component[half[0]], noise[half[1]], data.component[half[1]]) < 0.45


def test_knn_against_brute_force():
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(50, 3, generator=g), torch.randn(20, 3, generator=g)
    train_y, test_y = torch.randint(3, (50,), generator=g), torch.randint(3, (20,), generator=g)
    for metric in ("euclidean", "cosine"):
        a, b = (torch.nn.functional.normalize(t, dim=-1) for t in (train, test)) if metric == "cosine" else (train, test)
        predictions = []
        for point in b:
            nearest = ((a - point) ** 2).sum(-1).argsort()[:5]
            predictions.append(torch.bincount(train_y[nearest], minlength=3).argmax())
        expected = (torch.stack(predictions) == test_y).float().mean().item()
        assert knn_accuracy(train, train_y, test, test_y, k=5, metric=metric, chunk=7) == pytest.approx(expected)
    with pytest.raises(ValueError, match="k must be in"):
        knn_accuracy(train, train_y, test, test_y, k=51)


def test_each_model_trains_and_its_metrics_are_finite():
    record = run(CircleConfig(n_train=300, n_val=100, n_test=100, epochs=2, ll_samples=10), progress=False)
    assert set(record["results"]) == set(MODELS)
    for name, metrics in record["results"].items():
        assert all(math.isfinite(v) for v in metrics.values()), name
        assert ("test_ll" in metrics) == (name != "ae")


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="beta must be in"):
        CircleConfig(beta=1.5)
    with pytest.raises(ValueError, match="models must be among"):
        CircleConfig(models=("gan",))


def test_demo_runs_end_to_end(tmp_path):
    out = subprocess.run([sys.executable, "-m", "svae.cli", "demo", "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    assert "S-VAE" in out and "figure:" in out
    assert (tmp_path / "latent_spaces.png").stat().st_size > 10000
    record = json.loads((tmp_path / "demo.json").read_text())
    assert {"s_vae_distance_preservation", "n_vae_test_ll", "ae_knn_accuracy"} <= set(record["metrics"])
    assert record["command"] == "svae demo" and record["git_sha"] is not None


def test_s_vae_recovers_the_circle_and_the_n_vae_does_not():
    # The paper's Figure 1 in numbers (a reduced run): the S-VAE's codes keep the distances of the
    # true circle, the N-VAE's (three blobs) do not; both find the three clusters.
    config = CircleConfig(models=("n_vae", "s_vae"), n_train=2000, n_val=500, n_test=500, epochs=30, ll_samples=20)
    results = run(config, progress=False)["results"]
    s, n = results["s_vae"], results["n_vae"]
    assert s["distance_preservation"] > 0.93 and s["distance_preservation"] > n["distance_preservation"] + 0.04
    assert min(s["knn_accuracy"], n["knn_accuracy"]) > 0.9
