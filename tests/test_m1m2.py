"""M1+M2: the unlabelled bound, label sets, and a smoke run of each configuration."""
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

import svae
from svae.experiments import m1m2
from svae.experiments.m1m2 import CONFIGURATIONS, M1M2Config, balanced_labels, check_label_count, run
from svae.nn.latent import latent_family
from svae.nn.m2 import M2


@pytest.mark.parametrize("data", ["normal", "vmf"])
def test_unlabelled_bound_is_the_label_marginalised_sum(data):
    # A near-deterministic q(z2|x,y) (scale ~1e-13) makes each L(x, y) a function of (x, y) alone,
    # so the batched U can be checked against a loop over the classes.
    torch.manual_seed(0)
    model = M2(4, 3, latent_family("normal", 2), data=data, hidden=(8,)).double()
    with torch.no_grad():
        model.encoder[-1].bias[2:].fill_(-30.0)
        model.encoder[-1].weight[2:].zero_()
    x = torch.randn(5, 4, dtype=torch.float64)
    if data == "vmf":
        x = F.normalize(x, dim=-1)
    out = model.unlabelled_bound(x)
    q = F.softmax(model.classify(x), dim=-1)
    per_class = torch.stack([model.labelled_bound(x, F.one_hot(torch.full((5,), y), 3).double())["elbo"]
                             for y in range(3)], dim=-1)
    expected = (q * per_class).sum(-1) - (q * q.log()).sum(-1)
    assert torch.allclose(out["elbo"], expected, rtol=1e-9, atol=1e-9)
    assert torch.allclose(out["elbo"], out["recon"] - out["kl"])


def test_m2_objective_weighs_the_labelled_set_as_asked():
    torch.manual_seed(0)
    model = M2(4, 10, latent_family("normal", 2), hidden=(8,)).double()
    x, labelled_x = torch.randn(6, 4, dtype=torch.float64), torch.randn(10, 4, dtype=torch.float64)
    labelled_y = torch.arange(10)
    objective = m1m2.m2_objective(labelled_x, labelled_y, alpha=0.7, labelled_weight=0.002)
    torch.manual_seed(1)
    loss = objective(model, x)["loss"]
    torch.manual_seed(1)  # the same draws of z2, in the same order
    unlabelled = model.unlabelled_bound(x)["elbo"].mean()
    labelled = model.labelled_bound(labelled_x, F.one_hot(labelled_y, 10).double())["elbo"].mean()
    cross_entropy = -F.log_softmax(model.classify(labelled_x), -1)[torch.arange(10), labelled_y].mean()
    assert torch.allclose(loss, -unlabelled - 0.002 * labelled + 0.7 * cross_entropy, rtol=1e-12)


def test_labelled_weight_defaults_to_one_count_per_image(tmp_path, mirror, cache, monkeypatch):
    weights = []
    real = m1m2.m2_objective
    monkeypatch.setattr(m1m2, "m2_objective", lambda *a, **k: weights.append(k["labelled_weight"]) or real(*a, **k))
    for labelled_weight in (None, 0.5):
        config = M1M2Config(m1="normal", m2="normal", z1=3, z2=2, profile="smoke", m2_epochs=1, m2_patience=None,
                            labelled_weight=labelled_weight)
        run(config, m1_dir=tmp_path, data_dir=mirror, cache_dir=cache, progress=False)
    assert weights == [100 / 1000, 0.5]  # the smoke profile trains on 1000 images
    with pytest.raises(ValueError, match=r"labelled_weight must be None or a number >= 0, got -1"):
        M1M2Config(labelled_weight=-1)


def test_balanced_labels():
    targets = torch.arange(10).repeat_interleave(30)
    chosen = balanced_labels(targets, 100, seed=1)
    assert len(chosen) == 100 and len(set(chosen.tolist())) == 100
    assert torch.bincount(targets[chosen]).tolist() == [10] * 10
    assert torch.equal(chosen, balanced_labels(targets, 100, seed=1))


@pytest.mark.parametrize("labels, message", [(0, "labels must be a positive int"), (-10, "labels must be a positive int"),
                                             (105, "divisible by the 10 classes"), (400, "exceeds the 300")])
def test_bad_label_counts(labels, message):
    with pytest.raises(ValueError, match=message):
        balanced_labels(torch.arange(10).repeat_interleave(30), labels, seed=0)


def test_bad_label_count_on_the_command_line():
    result = subprocess.run([sys.executable, "-m", "svae.cli", "m1m2", "--m1", "vmf", "--m2", "normal", "--z1", "5",
                             "--z2", "5", "--labels", "55"], capture_output=True, text=True)
    assert result.returncode == 2 and "divisible by the 10 classes" in result.stderr


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_smoke_run_of_each_configuration(name, tmp_path, mirror, cache):
    m1, m2 = CONFIGURATIONS[name]
    config = M1M2Config(m1=m1, m2=m2, z1=3, z2=2, profile="smoke", m2_epochs=1, m2_patience=None)
    record = run(config, m1_dir=tmp_path, data_dir=mirror, cache_dir=cache, progress=False)
    assert 0 <= record["metrics"]["test_accuracy"] <= 1
    assert (tmp_path / "smoke" / "models" / f"{m1}_d3_seed0.pt").exists()  # the MNIST grid's model store


def test_m2_epoch_by_validation_accuracy(tmp_path, mirror, cache):
    config = M1M2Config(m1="normal", m2="normal", z1=3, z2=2, profile="smoke", m2_epochs=3, m2_patience=None,
                        m2_select="accuracy")
    record = run(config, m1_dir=tmp_path, data_dir=mirror, cache_dir=cache, progress=False)
    accuracies = [h["val_accuracy"] for h in record["history"]]
    assert len(accuracies) == 3 and all(0 <= a <= 1 for a in accuracies)
    assert record["metrics"]["m2_best_epoch"] == accuracies.index(max(accuracies)) + 1


def test_bad_m2_select_or_m1_codes_is_a_clear_error():
    with pytest.raises(ValueError, match=r"m2_select must be 'elbo' or 'accuracy', got 'loss'"):
        M1M2Config(m2_select="loss")
    with pytest.raises(ValueError, match=r"m1_codes must be 'mean' or 'sample', got 'mode'"):
        M1M2Config(m1_codes="mode")
    with pytest.raises(ValueError, match=r"m2_data must be one of \['normal', 'vmf'\], got 'power'"):
        M1M2Config(m2_data="power")
    with pytest.raises(ValueError, match=r"m2_warmup_epochs must be an int >= 0, got -1"):
        M1M2Config(m2_warmup_epochs=-1)


def _class_prototype_m2(prototypes, latent="normal"):
    """An M2 whose p(x | y, z2) is N(prototype of y, 0.1^2 I), whatever z2: the decoder is all y."""
    from torch.distributions import Independent, Normal

    model = M2(prototypes.shape[1], len(prototypes), latent_family(latent, 2), hidden=(8,))
    model.likelihood = lambda z2, y: Independent(Normal(y @ prototypes, 0.1), 1)
    return model


def test_m2_diagnostics():
    torch.manual_seed(0)
    prototypes = 3 * torch.eye(4)
    labels = torch.arange(4).repeat(5)
    codes = prototypes[labels] + 0.1 * torch.randn(20, 4)
    model = _class_prototype_m2(prototypes)
    found = m1m2.m2_diagnostics(model, codes, labels, chunk=7)  # chunks of unequal size
    # The codes sit at their class prototypes, so the bound of the true class wins by ~450 nats.
    assert found["decoder_accuracy"] == 1.0
    expected_kl = model.latent.kl(model.latent.posterior(model.encoder(torch.cat([codes, F.one_hot(labels, 4)], -1))))
    assert found["z2_kl"] == pytest.approx(expected_kl.mean().item(), rel=1e-5)
    # Labelled with the wrong classes, the generative model disagrees with every label.
    assert m1m2.m2_diagnostics(model, codes, (labels + 1) % 4)["decoder_accuracy"] == 0.0


def test_m2_data_likelihood_warm_up_and_correction_are_applied(tmp_path, mirror, cache, monkeypatch):
    built, trained = [], []
    real_m2, real_fit = m1m2.M2, m1m2.fit
    monkeypatch.setattr(m1m2, "M2", lambda *a, **k: built.append(k["data"]) or real_m2(*a, **k))
    monkeypatch.setattr(m1m2, "fit", lambda m, t, v, c, **k: trained.append((c.warmup_epochs, c.correction)) or real_fit(m, t, v, c, **k))
    # the defaults first (Gaussian likelihood of the codes, corrected gradients, no warm-up), then each changed
    for options in ({}, {"m2_data": "vmf", "m2_warmup_epochs": 2, "m2_correction": False}):
        config = M1M2Config(m1="vmf", m2="vmf", z1=3, z2=2, profile="smoke", m2_epochs=2, m2_patience=None, **options)
        record = run(config, m1_dir=tmp_path, data_dir=mirror, cache_dir=cache, progress=False)
        assert [h["kl_weight"] for h in record["history"]] == ([1.0, 1.0] if not options else [0.5, 1.0])
    assert built == ["normal", "vmf"] and trained == [(0, True), (2, False)]


@pytest.mark.parametrize("m1", ["normal", "vmf"])
def test_m2_on_sampled_m1_codes(m1, tmp_path, mirror, cache, monkeypatch):
    # every step (batch and labelled set) draws z1 from M1's posterior; the test codes stay its means
    calls = []
    real_sample = torch.distributions.Distribution.sample
    config = M1M2Config(m1=m1, m2="normal", z1=3, z2=2, profile="smoke", m2_epochs=1, m2_patience=None,
                        m1_codes="sample")
    run(config, m1_dir=tmp_path, data_dir=mirror, cache_dir=cache, progress=False)  # trains M1 first
    for family in (torch.distributions.Independent, svae.VonMisesFisher):
        monkeypatch.setattr(family, "sample", lambda self, *a: calls.append(self.batch_shape) or real_sample(self, *a),
                            raising=False)
    record = run(config, m1_dir=tmp_path, data_dir=mirror, cache_dir=cache, progress=False)
    assert 0 <= record["metrics"]["test_accuracy"] <= 1
    assert (100,) in calls  # the labelled set
    assert len(calls) > 10  # every batch


def test_m1_is_reused_from_the_model_store(tmp_path, mirror, cache, monkeypatch):
    config = M1M2Config(m1="vmf", m2="normal", z1=3, z2=2, profile="smoke", m2_epochs=1, m2_patience=None)
    record = run(config, m1_dir=tmp_path, data_dir=mirror, cache_dir=cache, progress=False)

    def no_training(*args, **kwargs):
        raise AssertionError("M1 was trained again")

    monkeypatch.setattr(m1m2, "train_model", no_training)
    again = run(config, m1_dir=tmp_path, data_dir=mirror, cache_dir=cache, progress=False)
    assert again["metrics"] == record["metrics"]


def test_smoke_grid_writes_table_3_and_resumes(tmp_path, mirror, cache):
    from svae.experiments.m1m2 import reproduce

    options = dict(profile="smoke", out_dir=tmp_path / "records", m1_dir=tmp_path / "mnist", table=tmp_path / "t.md",
                   data_dir=mirror, cache_dir=cache, dims=(2,), progress=False)
    text = reproduce(**options)
    assert "| 2 | 2 |" in text and "—" not in text.split("| z1 | z2 |")[1]
    records = sorted((tmp_path / "records" / "smoke").glob("*.json"))
    assert [p.name for p in records] == ["NN_z12_z22_seed0.json", "SN_z12_z22_seed0.json", "SS_z12_z22_seed0.json"]
    before = {p: p.stat().st_mtime_ns for p in records}
    records[0].unlink()
    text = reproduce(**options, train=False)  # the table from the records present
    assert "Incomplete grid: 1 of its 3 runs" in text
    reproduce(**options)  # resumes: only the missing run is trained
    assert {p: p.stat().st_mtime_ns for p in records[1:]} == {p: before[p] for p in records[1:]}
    assert records[0].exists()
    reproduce(**{**options, "table": None}, train=False)  # by default results/m1m2.md: <records>.md
    assert (tmp_path / "records.md").read_text() == (tmp_path / "t.md").read_text()


def test_table_3_gives_mean_and_std_over_seeds(tmp_path):
    from svae.experiments.m1m2 import PROFILES, record_path, write_table
    from svae.records import write_record

    accuracies = {0: 0.90, 1: 0.93, 2: 0.99}  # mean 94.0, sample std 4.58 (in %)
    configs = [M1M2Config(m1=m1, m2=m2, z1=5, z2=5, seed=s, profile="smoke", **PROFILES["smoke"])
               for m1, m2 in CONFIGURATIONS.values() for s in accuracies]
    for config in configs:
        if (config.m1, config.m2) == ("vmf", "vmf"):
            write_record(record_path(tmp_path, config), command="test", config=asdict(config),
                         metrics={"test_accuracy": accuracies[config.seed]}, wall_time=0.0)
    text = write_table(configs, tmp_path, tmp_path / "t.md", "smoke")
    row = next(line for line in text.splitlines() if line.startswith("| 5 | 5 |"))
    cells = dict(zip(CONFIGURATIONS, (c.strip() for c in row.split("|")[3:-1])))
    assert cells["S+S"].startswith("94.0 ± 4.6")
    assert cells["N+N"] == cells["S+N"] == "—"
    assert "mean ± std over 3 seed(s)" in text and "Incomplete grid: 6 of its 9 runs" in text
