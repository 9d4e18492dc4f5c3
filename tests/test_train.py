"""The training engine and the objectives: identities, importance sampling, resume, NaN stop, DDP."""
import copy
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from svae.nn.latent import latent_family
from svae.nn.objectives import elbo_terms, importance_log_likelihood
from svae.nn.vae import VAE, mlp, GaussianDecoder
from svae.train import NonFiniteLossError, TrainConfig, evaluate, fit

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import problem  # noqa: E402


@pytest.mark.parametrize("family", ["normal", "vmf", "power"])
def test_elbo_is_reconstruction_minus_closed_form_kl(family):
    # ELBO = RE - KL with the closed-form KL equals the Monte Carlo E_q[log p(x|z) + log p(z) - log q(z|x)]
    torch.manual_seed(0)
    model = VAE.mlp(12, (8,), latent_family(family, 3), "bernoulli").double()
    x = (torch.rand(4, 12) > 0.5).double()
    terms = elbo_terms(model, x)
    assert torch.allclose(terms["elbo"], terms["recon"] - terms["kl"])
    q = model.posterior(x)
    z = q.sample((200000,))
    log_ratio = q.log_prob(z) - model.latent.prior_log_prob(z)
    kl_mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(z))
    assert ((kl_mc - terms["kl"]).abs() < 5 * se).all()


def linear_gaussian(d=2, data_dim=5, noise=0.5):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, noise^2 I): log p(x) is N(b, W W^T + noise^2 I)."""
    g = torch.Generator().manual_seed(0)
    model = VAE(mlp([data_dim, 2 * d]), GaussianDecoder(mlp([d, data_dim]), init_scale=noise),
                latent_family("normal", d, scale="exp")).double()
    w, b = model.decoder.net[0].weight, model.decoder.net[0].bias
    with torch.no_grad():
        w.copy_(torch.randn(data_dim, d, generator=g, dtype=torch.float64))
        b.copy_(torch.randn(data_dim, generator=g, dtype=torch.float64))
    marginal = torch.distributions.MultivariateNormal(b.detach(), w.detach() @ w.detach().T + noise**2 * torch.eye(data_dim, dtype=torch.float64))
    return model, marginal


def test_importance_sampling_bound_is_monotone_and_exact_in_the_limit():
    torch.manual_seed(0)
    model, marginal = linear_gaussian()
    x = marginal.sample((400,))
    exact = marginal.log_prob(x).mean().item()
    estimates, errors = [], []
    for k in (1, 10, 100, 2000):
        runs = torch.stack([importance_log_likelihood(model, x, n_samples=k, chunk=300).mean() for _ in range(5)])
        estimates.append(runs.mean().item())
        errors.append(runs.std().item() / math.sqrt(5) + 1e-3)
    for (a, ea), (b, eb) in zip(zip(estimates, errors), zip(estimates[1:], errors[1:])):
        assert b > a - 3 * (ea + eb)  # non-decreasing in the number of samples
    assert estimates[0] < exact - 0.5  # a poor proposal: the one-sample bound is loose
    assert abs(estimates[-1] - exact) < 0.05 * abs(estimates[0] - exact)  # and 2000 samples close the gap
    assert all(e < exact + 3 * err for e, err in zip(estimates, errors))


def test_resume_is_bit_for_bit(tmp_path):
    config = TrainConfig(epochs=4, batch_size=32, micro_batches=2, seed=3, warmup_epochs=2)
    model, train_x, val_x = problem("vmf")
    full = fit(model, train_x, val_x, config, progress=False)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    model, train_x, val_x = problem("vmf")
    first = fit(model, train_x, val_x, config, progress=False, checkpoint=tmp_path / "ckpt.pt", stop_after=2)
    assert not first["finished"] and len(first["history"]) == 2
    model, train_x, val_x = problem("vmf")  # a new process would start from scratch like this
    resumed = fit(model, train_x, val_x, config, progress=False, checkpoint=tmp_path / "ckpt.pt")
    assert resumed["finished"] and resumed["history"] == full["history"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key
    # the record's wall time counts the first session too
    assert 0 < resumed["resumed_seconds"] <= first["wall_time"] < resumed["wall_time"]


def test_checkpoint_of_another_config_is_refused(tmp_path):
    model, train_x, val_x = problem("normal")
    fit(model, train_x, val_x, TrainConfig(epochs=1, batch_size=50), progress=False, checkpoint=tmp_path / "c.pt")
    with pytest.raises(ValueError, match=r"written with another configuration: epochs = 1, not 2, lr = 0.001, not 0.1"):
        fit(model, train_x, val_x, TrainConfig(epochs=2, batch_size=50, lr=0.1), progress=False, checkpoint=tmp_path / "c.pt")


def test_checkpoint_of_another_model_is_refused(tmp_path):
    model, train_x, val_x = problem("vmf")
    config = TrainConfig(epochs=2, batch_size=50)
    fit(model, train_x, val_x, config, progress=False, checkpoint=tmp_path / "c.pt", stop_after=1)
    power, _, _ = problem("power")  # the same shapes: only the family tells them apart
    with pytest.raises(ValueError, match=r"written for another model \(latent VonMisesFisherLatent\(dim=3\), "
                                         r"not PowerSphericalLatent\(dim=3\)\)"):
        fit(power, train_x, val_x, config, progress=False, checkpoint=tmp_path / "c.pt")
    wider = VAE.mlp(20, (24,), latent_family("vmf", 3), "bernoulli")
    with pytest.raises(ValueError, match=r"written for another model \(decoder.net.0.bias of shape \[16\], not "
                                         r"\[24\]; "):
        fit(wider, train_x, val_x, config, progress=False, checkpoint=tmp_path / "c.pt")
    model, _, _ = problem("vmf")
    assert fit(model, train_x, val_x, config, progress=False, checkpoint=tmp_path / "c.pt")["finished"]


def test_checkpoint_resumes_on_another_device(tmp_path):
    # the device is where a run trains, not part of it (a GPU checkpoint resumes on a CPU)
    model, train_x, val_x = problem("normal")
    config = TrainConfig(epochs=2, batch_size=50)
    fit(model, train_x, val_x, config, progress=False, checkpoint=tmp_path / "c.pt", stop_after=1)
    saved = torch.load(tmp_path / "c.pt", weights_only=False)
    saved["config"]["device"] = "cuda"  # as a GPU run would have written it
    torch.save(saved, tmp_path / "c.pt")
    resumed = fit(model, train_x, val_x, config, progress=False, checkpoint=tmp_path / "c.pt")
    assert resumed["finished"] and [h["epoch"] for h in resumed["history"]] == [1, 2]


def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path):
    model, train_x, val_x = problem("normal")
    calls = {"n": 0}

    def poison_in_epoch_two(x):
        calls["n"] += 1
        return x * float("nan") if calls["n"] > 6 else x  # 5 training batches and 1 validation batch per epoch

    config = TrainConfig(epochs=3, batch_size=40)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at epoch 2, step 6.*checkpoint of epoch 1 is kept"):
        fit(model, train_x, val_x, config, transform=poison_in_epoch_two, progress=False, checkpoint=tmp_path / "c.pt")
    saved = torch.load(tmp_path / "c.pt", weights_only=False)
    assert saved["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_non_finite_weights_after_a_finite_loss_are_not_checkpointed(tmp_path):
    # The last step of epoch 2 has a finite loss but a NaN gradient (d sqrt(0 * w) / dw = 0 * inf):
    # Adam writes NaN into the weights, and only the validation pass can see it.
    model, train_x, val_x = problem("normal")
    steps = {"n": 0}

    def nan_gradient_in_step_ten(model, x, **options):
        terms = elbo_terms(model, x, **options)
        if model.training:
            steps["n"] += 1
            if steps["n"] == 10:  # 5 steps per epoch
                terms["loss"] = terms["loss"] + (0 * model.encoder[0].weight.sum()).sqrt()
        return terms

    with pytest.raises(NonFiniteLossError, match=r"non-finite validation figures .* after epoch 2; training "
                                                 r"stopped, the checkpoint of epoch 1 is kept"):
        fit(model, train_x, val_x, TrainConfig(epochs=3, batch_size=40), objective=nan_gradient_in_step_ten,
            progress=False, checkpoint=tmp_path / "c.pt")
    saved = torch.load(tmp_path / "c.pt", weights_only=False)
    assert saved["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_progress_bar_shows_the_running_figures_during_an_epoch(monkeypatch, capsys):
    import svae.progress
    import svae.train

    monkeypatch.setattr(svae.progress, "_on_terminal", lambda: True)  # the live bar (a log gets lines)

    clock = iter(range(0, 10**6))  # each reading of the clock one second later: every step redraws
    monkeypatch.setattr(svae.train.time, "monotonic", lambda: float(next(clock)))
    model, train_x, val_x = problem("normal")
    fit(model, train_x, val_x, TrainConfig(epochs=1, batch_size=40), progress=True)
    err = capsys.readouterr().err
    draws = [line for line in err.replace("\r", "\n").splitlines() if "loss=" in line]
    during = [line for line in draws if "val=" not in line]  # before the epoch's validation
    assert during and all("elbo=" in line and "recon=" in line and "kl=" in line for line in during)
    assert any("val=" in line for line in draws)


def test_kl_warm_up_is_linear_then_constant():
    config = TrainConfig(kl_weight=0.5, warmup_epochs=4)
    assert [config.kl_weight_at(e) for e in (1, 2, 3, 4, 5, 100)] == [0.125, 0.25, 0.375, 0.5, 0.5, 0.5]
    assert TrainConfig(kl_weight=0.5).kl_weight_at(1) == 0.5


def test_early_stopping_keeps_the_best_epoch():
    model, train_x, val_x = problem("normal")
    result = fit(model, train_x, val_x, TrainConfig(epochs=50, batch_size=40, lr=0.05, patience=2), progress=False)
    scores = [row["val_elbo"] for row in result["history"]]
    best = max(range(len(scores)), key=scores.__getitem__) + 1
    assert result["best_epoch"] == best and len(scores) == best + 2 and result["finished"]


@pytest.mark.parametrize("latent", ["normal", "vmf"])
def test_every_epoch_is_validated_with_the_same_random_numbers(latent):
    # With a learning rate too small to change a float32 weight the model stays what it was, so
    # the validation ELBO, a one-sample estimate, must come out the same in every epoch.
    model, train_x, val_x = problem(latent)
    before = copy.deepcopy(model.state_dict())
    result = fit(model, train_x, val_x, TrainConfig(epochs=3, batch_size=40, lr=1e-30), progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    scores = [row["val_elbo"] for row in result["history"]]
    assert scores[0] == scores[1] == scores[2]


def test_evaluation_batches_get_their_random_numbers_whatever_earlier_ones_used():
    # Two objectives that draw different amounts of randomness per batch (as a rejection sampler
    # does for two nearby models): each batch must still start from the same random numbers.
    def starts_of_batches(draws_per_batch):
        starts = []

        def transform(x):
            starts.append(torch.rand(()).item())
            return x

        def objective(model, x):
            torch.rand(draws_per_batch)
            return {"elbo": x.sum(-1)}

        evaluate(torch.nn.Identity(), torch.ones(30, 2), batch_size=10, transform=transform, seed=3,
                 objective=objective)
        return starts

    assert starts_of_batches(1) == starts_of_batches(5)


@pytest.mark.parametrize("latent", ["normal", "vmf"])
def test_two_process_ddp_equals_the_single_process_run(latent, tmp_path):
    model, train_x, val_x = problem(latent)
    fit(model, train_x, val_x, TrainConfig(epochs=3, batch_size=40, micro_batches=2, seed=5), progress=False)
    out = tmp_path / "ddp.pt"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(Path(__file__).parent / "ddp_worker.py"), latent, str(out)],
                   check=True, capture_output=True, timeout=300)
    ddp = torch.load(out)
    for key, value in model.state_dict().items():
        assert torch.allclose(value, ddp["state"][key], atol=1e-5, rtol=1e-4), key
    # Adam hides a scaled gradient (its update barely depends on the scale), so compare the
    # gradients themselves: the batch's, whichever process computed which micro-batch
    for p, ddp_grad in zip(model.parameters(), ddp["grads"]):
        assert torch.allclose(p.grad, ddp_grad, atol=1e-6, rtol=1e-4)


def test_monitored_figures_are_recorded_and_selectable():
    model, train_x, val_x = problem("normal")
    scores = iter([0.2, 0.7, 0.4])  # a monitor whose best epoch is the second
    fitted = fit(model, train_x, val_x, TrainConfig(epochs=3, batch_size=40), progress=False,
                 monitor=lambda m: {"score": next(scores)}, select="val_score")
    assert [h["val_score"] for h in fitted["history"]] == [0.2, 0.7, 0.4]
    assert fitted["best_epoch"] == 2


def test_selecting_an_unknown_figure_is_a_clear_error():
    model, train_x, val_x = problem("normal")
    with pytest.raises(KeyError, match=r"select='val_accuracy' is not among the validation figures"):
        fit(model, train_x, val_x, TrainConfig(epochs=1, batch_size=40), progress=False, select="val_accuracy")
