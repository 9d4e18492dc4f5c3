"""The MNIST experiment: one run's record, the smoke profile of the whole grid, bad arguments."""
import json
import math
import subprocess
import sys
import types

import pytest

import torch
from conftest import run_svae

from svae.experiments import mnist as mnist_experiment  # its test_log_likelihood is no test: not imported bare
from svae.experiments.mnist import (MnistConfig, binarized_test_set, build_model, knn_scores, load_model, model_path,
                                    save_model, trained_model)


def svae(*args, check=True, cwd=None):
    return run_svae(*args, check=check, cwd=cwd)


def test_one_run_writes_the_metrics(tmp_path, mirror, cache):
    out, weights = tmp_path / "run.json", tmp_path / "models" / "run.pt"
    svae("mnist", "--latent", "vmf", "--dim", "2", "--profile", "smoke", "--hidden", "64", "32", "--json", str(out),
         "--model", str(weights), "--data-dir", str(mirror), "--cache-dir", str(cache))
    record = json.loads(out.read_text())
    assert record["config"]["hidden"] == [64, 32]
    metrics = record["metrics"]
    assert {"test_ll", "test_elbo", "test_re", "test_kl", "knn_acc_100", "knn_acc_100_std"} <= set(metrics)
    assert metrics["test_ll"] >= metrics["test_elbo"] - 1.0  # the IWAE bound is above the ELBO (up to noise)
    # per example, ELBO = RE - KL is rounded in float32 (eps 1.2e-7 of about 500 nats) before averaging
    assert abs(metrics["test_elbo"] - (metrics["test_re"] - metrics["test_kl"])) < 1e-5 * abs(metrics["test_elbo"])
    assert len(record["codes"]) == len(record["labels"]) and len(record["codes"][0]) == 3  # S^2 in R^3
    # --model keeps the weights the record evaluated: evaluated again, they give its figures exactly.
    config = MnistConfig(**record["config"])
    model = load_model(weights, config)
    again = mnist_experiment.evaluate_on_test_set(model, mnist_experiment.load_data(config, data_dir=mirror,
                                                                                   cache_dir=cache), config)
    assert {k: again[k] for k in ("test_ll", "test_elbo", "knn_acc_100")} == {
        k: metrics[k] for k in ("test_ll", "test_elbo", "knn_acc_100")}


def test_smoke_profile_of_the_grid(tmp_path, mirror, cache):
    table = tmp_path / "mnist.md"
    svae("reproduce", "mnist", "--profile", "smoke", "--out", str(tmp_path / "records"), "--table", str(table),
         "--data-dir", str(mirror), "--cache-dir", str(cache))
    text = table.read_text()
    assert "## Table 1" in text and "## Table 2" in text
    assert text.count("| S-VAE |") == 10 and text.count("| N-VAE |") == 10 and text.count("| PS-VAE |") == 10
    records = sorted(p.name for p in (tmp_path / "records").glob("*.json"))
    assert len(records) == 15
    # every figure next to the paper's and its difference; with one seed, k-NN's ± is over the label draws
    assert "| Δ LL | ELBO | paper ELBO | Δ ELBO | RE | paper RE | Δ RE | KL | paper KL | Δ KL |" in text
    m = json.loads((tmp_path / "records" / "vmf_d2_seed0.json").read_text())["metrics"]
    table_1 = (f"| 2 | S-VAE | {m['test_ll']:.2f} | -132.50 | {m['test_ll'] + 132.50:+.2f} | {m['test_elbo']:.2f} "
               f"| -133.72 | {m['test_elbo'] + 133.72:+.2f} |")
    table_2 = f"| 2 | S-VAE | {100 * m['knn_acc_100']:.1f} ± {100 * m['knn_acc_100_std']:.1f} | 77.9 |"
    assert table_1 in text and table_2 in text
    models = sorted(p.name for p in (tmp_path / "records" / "models").glob("*.pt"))  # kept for M1+M2
    assert models == [name.replace(".json", ".pt") for name in records]
    # resumable: a second call finds every record done and only rewrites the table
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "records").glob("*.json")}
    svae("reproduce", "mnist", "--profile", "smoke", "--out", str(tmp_path / "records"), "--table", str(table),
         "--data-dir", str(mirror), "--cache-dir", str(cache))
    assert {p: p.stat().st_mtime_ns for p in before} == before
    # --dims: part of the grid, e.g. one dimension of the paper profile
    svae("reproduce", "mnist", "--profile", "smoke", "--dims", "5", "--out", str(tmp_path / "records"),
         "--table", str(tmp_path / "d5.md"), "--table-only")
    d5 = (tmp_path / "d5.md").read_text()
    assert d5.count("| S-VAE |") == 2 and "| 5 |" in d5 and "| 2 |" not in d5 and "Incomplete" not in d5
    # --latents: the paper's two families without the Power Spherical
    svae("reproduce", "mnist", "--profile", "smoke", "--latents", "normal", "vmf", "--out", str(tmp_path / "records"),
         "--table", str(tmp_path / "paper_two.md"), "--table-only")
    two = (tmp_path / "paper_two.md").read_text()
    assert two.count("| S-VAE |") == 10 and two.count("| N-VAE |") == 10 and "PS-VAE" not in two
    assert "`svae reproduce mnist --profile smoke --latents normal vmf`" in two  # the table names its part
    assert "`svae reproduce mnist --profile smoke --dims 5`" in d5
    assert "`svae reproduce mnist --profile smoke` from" in text
    # --seeds: the table names it, and counts the seeds without a record as missing runs
    svae("reproduce", "mnist", "--profile", "smoke", "--dims", "5", "--latents", "vmf", "--seeds", "2", "--out",
         str(tmp_path / "records"), "--table", str(tmp_path / "seeds.md"), "--table-only")
    seeds = (tmp_path / "seeds.md").read_text()
    assert "`svae reproduce mnist --profile smoke --dims 5 --latents vmf --seeds 2`" in seeds
    assert "Incomplete grid: 1 of its 2 runs" in seeds
    # a repeated dimension or family names each run once
    svae("reproduce", "mnist", "--profile", "smoke", "--dims", "5", "5", "--latents", "vmf", "vmf", "--out",
         str(tmp_path / "records"), "--table", str(tmp_path / "twice.md"), "--table-only")
    twice = (tmp_path / "twice.md").read_text()
    assert twice.count("| S-VAE |") == 2 and "± 0.00" not in twice and "--dims 5 --latents vmf`" in twice
    # an incomplete grid: the table from the records present says what is missing
    (tmp_path / "records" / "vmf_d2_seed0.json").unlink()
    svae("reproduce", "mnist", "--profile", "smoke", "--out", str(tmp_path / "records"), "--table", str(table),
         "--table-only")
    text = table.read_text()
    assert "Incomplete grid: 1 of its 15 runs" in text and text.count("| S-VAE |") == 8
    # without --table: results/mnist.md, the name issue 4 gives
    svae("reproduce", "mnist", "--profile", "smoke", "--out", str(tmp_path / "records"), "--table-only", cwd=tmp_path)
    assert (tmp_path / "results" / "mnist.md").read_text() == text


@pytest.mark.parametrize("args, message", [
    (["--latent", "gauss", "--dim", "2"], "invalid choice: 'gauss'"),
    (["--latent", "vmf", "--dim", "0"], "dim must be an int >= 1"),
    (["--latent", "vmf", "--dim", "2", "--epochs", "0"], "epochs must be an int >= 1"),
    (["--latent", "vmf", "--dim", "2", "--patience", "-1"], "--patience must be >= 0 (0 turns early stopping off)"),
    (["--latent", "vmf", "--dim", "2", "--hidden", "64", "0"], "hidden must be one or more layer widths >= 1"),
])
def test_bad_arguments(args, message):
    result = svae("mnist", *args, check=False)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize("flag, patience", [([], 10), (["--profile", "paper"], 50), (["--patience", "7"], 7),
                                             (["--patience", "0"], None)])
def test_patience_flag(monkeypatch, flag, patience):
    import svae.experiments.mnist
    from svae.cli import main

    configs = []
    monkeypatch.setattr(svae.experiments.mnist, "run", lambda config, **_: configs.append(config))
    assert main(["mnist", "--latent", "vmf", "--dim", "2", *flag]) == 0  # the fast profile by default: patience 10
    assert configs[0].patience == patience


def test_config_validation():
    with pytest.raises(ValueError, match="latent must be one of"):
        MnistConfig(latent="x")


def test_a_saved_model_is_reused_only_for_its_own_configuration(tmp_path):
    config = MnistConfig(latent="vmf", dim=3, epochs=2, warmup_epochs=0)
    torch.manual_seed(0)
    model = build_model(config)
    save_model(tmp_path / "m.pt", model, config)
    loaded = load_model(tmp_path / "m.pt", config)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert load_model(tmp_path / "m.pt", MnistConfig(latent="vmf", dim=3, epochs=3, warmup_epochs=0)) is None
    assert load_model(tmp_path / "missing.pt", config) is None


def test_a_trained_grid_model_is_found_or_named_with_the_command_that_trains_it(tmp_path):
    config = MnistConfig(latent="vmf", dim=3, seed=1, epochs=2, warmup_epochs=0)
    with pytest.raises(FileNotFoundError, match="--profile paper --dims 3 --latents vmf --seeds 2`"):
        trained_model(config, "paper", tmp_path)
    model = build_model(config)
    save_model(model_path(tmp_path / "paper", config), model, config)
    found = trained_model(config, "paper", tmp_path)
    assert not found.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), found.state_dict().values()))


@pytest.mark.parametrize("latent, params, code", [("normal", 20, 10), ("vmf", 12, 11), ("power", 12, 11)])
def test_the_paper_architecture(latent, params, code):
    # encoder 784-256-128 and a head for the family's parameters; decoder mirrored, d degrees of freedom
    model = build_model(MnistConfig(latent=latent, dim=10))
    linear = lambda net: [(m.in_features, m.out_features) for m in net if isinstance(m, torch.nn.Linear)]
    assert linear(model.encoder) == [(784, 256), (256, 128), (128, params)]
    assert linear(model.decoder.net) == [(code, 128), (128, 256), (256, 784)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in model.encoder) == 2
    narrow = build_model(MnistConfig(latent=latent, dim=10, hidden=(32,)))  # sizes are configurable
    assert linear(narrow.encoder) == [(784, 32), (32, params)] and linear(narrow.decoder.net) == [(code, 32), (32, 784)]
    q = model.latent.posterior(torch.zeros(1, params))  # raw outputs 0: softplus(0) = log 2
    if latent == "normal":
        assert torch.allclose(q.base_dist.scale, torch.full((1, 10), math.log(2)))
    else:
        assert torch.allclose(q.concentration, torch.tensor([1 + math.log(2)]))
        q = model.latent.posterior(torch.tensor([[3.0, 4.0] + [0.0] * 10]))
        assert torch.allclose(q.loc[0, :2], torch.tensor([0.6, 0.8]))


@pytest.mark.parametrize("latent, predicted", [("normal", 1), ("vmf", 0)])
def test_knn_uses_cosine_distance_on_the_sphere(latent, predicted):
    # the test code (0.2, 0.05) is nearest to class 1's short codes in Euclidean distance and to
    # class 0's direction in angle: the sphere's codes are directions, their length means nothing
    class Codes:
        def embed(self, x):
            return x

    train_x = torch.tensor([[10.0, 0.0]] * 3 + [[0.1, 0.12]] * 3)
    data = types.SimpleNamespace(train_x=train_x, train_y=torch.tensor([0] * 3 + [1] * 3),
                                 test_x=torch.tensor([[0.2, 0.05]]), test_y=torch.tensor([predicted]))
    config = MnistConfig(latent=latent, dim=1, knn_labels=(6,), knn_draws=4, knn_k=1)
    assert knn_scores(Codes(), data, config) == {"knn_acc_6": 1.0, "knn_acc_6_std": 0.0}


def test_torchrun_trains_the_command_data_parallel(tmp_path, mirror, cache):
    # `torchrun ... svae mnist`: gloo on CPU, one micro-batch per process, rank 0 alone evaluates and
    # writes the record, which matches one process with as many micro-batches
    common = ["mnist", "--latent", "vmf", "--dim", "2", "--profile", "smoke", "--device", "cpu", "--data-dir",
              str(mirror), "--cache-dir", str(cache)]
    svae(*common, "--micro-batches", "2", "--json", str(tmp_path / "one.json"))
    two_processes = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                    "2", "-m", "svae.cli", *common, "--json", str(tmp_path / "two.json")],
                                   check=True, capture_output=True, text=True, timeout=600)
    assert two_processes.stdout.count("record written to") == 1
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two["config"]["micro_batches"] == 2 and two["config"] == one["config"]
    assert two["metrics"].keys() == one["metrics"].keys()
    for key, value in one["metrics"].items():
        assert two["metrics"][key] == pytest.approx(value, abs=1e-3), key


def test_every_metric_and_model_of_a_seed_sees_one_binarisation_of_the_test_images():
    x = torch.rand(30, 784)
    binary = binarized_test_set(x, MnistConfig(latent="vmf", dim=2))
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(binary, binarized_test_set(x, MnistConfig(latent="normal", dim=40)))
    assert not torch.equal(binary, binarized_test_set(x, MnistConfig(latent="vmf", dim=2, seed=1)))

    def batch_starts(draws_per_batch):
        # an estimator that draws more or less randomness per batch, as two models' samplers do
        starts = []

        def estimate(model, batch, samples):
            starts.append(torch.rand(()).item())
            torch.rand(draws_per_batch)
            return batch.sum(-1)

        value = mnist_experiment.test_log_likelihood(None, images, MnistConfig(), batch_size=10, estimate=estimate)
        return starts, value

    images = binary
    assert batch_starts(1) == batch_starts(7)
    images = x  # grey levels reach the estimator as they are: test_log_likelihood does not binarise
    assert batch_starts(1)[1] == pytest.approx(x.sum().item() / 30)


def test_the_test_figures_of_a_model_share_one_binarisation(monkeypatch):
    seen = {}

    def record(name, value):
        def capture(model, x, *args, **kwargs):
            seen[name] = x
            return value
        return capture

    monkeypatch.setattr(mnist_experiment, "evaluate", record("elbo", {"elbo": -1.0, "recon": -0.5, "kl": 0.5}))
    monkeypatch.setattr(mnist_experiment, "test_log_likelihood", record("ll", -0.9))
    monkeypatch.setattr(mnist_experiment, "knn_scores", lambda *args: {})
    config = MnistConfig(latent="vmf", dim=2)
    data = types.SimpleNamespace(test_x=torch.rand(20, 784))
    metrics = mnist_experiment.evaluate_on_test_set(build_model(config), data, config)
    assert metrics == {"test_ll": -0.9, "test_elbo": -1.0, "test_re": -0.5, "test_kl": 0.5}
    assert seen["ll"] is seen["elbo"] and torch.equal(seen["ll"], binarized_test_set(data.test_x, config))
