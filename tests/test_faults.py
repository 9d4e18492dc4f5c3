"""Fault injection through the real command line (issue [7]): a run that diverges must fail loudly,
exit non-zero, and leave no test metric behind. Each case runs `svae` in a subprocess on tiny
settings and checks the exit code, the message, the absence of a traceback and the record."""
import json
import math
import subprocess
import sys

import pytest
import torch

from svae import metrics


def svae(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "svae.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


# --- metrics refuse non-finite scores ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_ranking_metrics_refuse_non_finite_scores(bad):
    """NaN ranks like a number: a diverged model's scores gave AUC = AP = 1.0."""
    pos, neg = torch.rand(50), torch.rand(50)
    pos[3] = bad
    for metric in (metrics.roc_auc, metrics.average_precision):
        with pytest.raises(ValueError, match="positive scores: 1 of 50 values are NaN or infinite"):
            metric(pos, neg)
        with pytest.raises(ValueError, match="negative scores"):
            metric(neg, pos)


def test_code_metrics_refuse_non_finite_codes():
    codes, labels = torch.randn(40, 2), torch.arange(40) % 4
    broken = codes.clone()
    broken[7, 1] = math.nan
    with pytest.raises(ValueError, match="test codes"):
        metrics.knn_accuracy(codes, labels, broken, labels, k=3)
    with pytest.raises(ValueError, match="training codes"):
        metrics.knn_accuracy(broken, labels, codes, labels, k=3)
    with pytest.raises(ValueError, match="codes: 1 of 80"):
        metrics.circular_alignment(torch.rand(40), broken)
    with pytest.raises(ValueError, match="codes: 1 of 80"):
        metrics.distance_preservation(codes, broken)


# --- divergence --------------------------------------------------------------------------------------


def _assert_diverged(run, record_path):
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Traceback" not in run.stderr and "epoch" in run.stderr and "diverged" in run.stderr.lower() + run.stdout
    record = json.loads(record_path.read_text())
    assert record["status"] == "diverged" and record["metrics"] == {} and "epoch" in record["error"]
    assert not any(key.startswith("test_") for key in record)


def test_diverging_link_prediction_exits_nonzero_with_no_test_metric(tmp_path, mirror, cache):
    """The issue's command: --lr 1 makes the loss infinite at epoch 2; before, the NaN epoch was
    picked as the best and scored test AUC 1.0000."""
    out = tmp_path / "x.json"
    run = svae("linkpred", "--dataset", "cora", "--latent", "normal", "--epochs", "30", "--lr", "1", "--json",
               str(out), "--data-dir", str(mirror), "--cache-dir", str(cache))
    _assert_diverged(run, out)
    assert "test AUC" not in run.stdout


def test_diverging_mnist_run_exits_nonzero_with_no_test_metric(tmp_path, mirror, cache):
    out = tmp_path / "m.json"
    run = svae("mnist", "--latent", "normal", "--dim", "2", "--profile", "smoke", "--hidden", "64", "32", "--lr",
               "1e6", "--json", str(out), "--data-dir", str(mirror), "--cache-dir", str(cache))
    _assert_diverged(run, out)
    assert "step" in run.stderr


# --- bad output paths are found before any work starts -------------------------------------------------


@pytest.mark.parametrize("option, value, message", [
    ("--json", "", "an empty path"),
    ("--json", "{tmp}", "is a directory"),
    ("--checkpoint", "{tmp}", "is a directory"),
    ("--model", "{tmp}", "is a directory"),
    ("--json", "/proc/svae-no-such-dir/run.json", "cannot write in its folder"),  # unwritable, even for root
    ("--json", "{file}/run.json", "cannot write in its folder"),  # a folder that is a file
])
def test_bad_output_paths_fail_before_training(tmp_path, mirror, cache, option, value, message):
    plain_file = tmp_path / "plain"
    plain_file.write_text("")
    value = value.format(tmp=tmp_path, file=plain_file)
    run = svae("mnist", "--latent", "vmf", "--dim", "2", "--profile", "smoke", option, value, "--data-dir",
               str(mirror), "--cache-dir", str(cache))
    assert run.returncode == 2 and message in run.stderr and option in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and run.stdout == ""  # nothing loaded or trained


def test_missing_output_folders_are_created_at_the_start(tmp_path, mirror, cache):
    out = tmp_path / "new" / "deeper" / "run.json"
    run = svae("linkpred", "--dataset", "cora", "--latent", "normal", "--epochs", "2", "--json", str(out),
               "--data-dir", str(mirror), "--cache-dir", str(cache))
    assert run.returncode == 0 and json.loads(out.read_text())["metrics"]["test_auc"] > 0


def test_a_record_that_cannot_be_written_goes_to_a_printed_fallback(tmp_path, capsys):
    """If writing still fails at the end (the disk filled, the folder vanished), the result is kept."""
    from svae.records import write_record

    written = write_record("/proc/svae-no-such-dir/run.json", command="test", config={}, metrics={"x": 1.0},
                           wall_time=0.0)
    try:
        assert json.loads(written.read_text())["metrics"] == {"x": 1.0}
        assert str(written) in capsys.readouterr().err
    finally:
        written.unlink()


# --- misleading or ignored input ------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (("demo", "--epochs", "0"), "epochs must be an int >= 1, got 0"),  # 0 was taken as unset
    (("demo", "--epochs", "-1"), "epochs must be an int >= 1, got -1"),  # was a traceback
    (("linkpred", "--dataset", "cora", "--latent", "vmf", "--seed", "99999999999999999999"), "--seed"),
    (("mnist", "--latent", "vmf", "--dim", "2", "--seed", "-3"), "--seed"),
])
def test_bad_arguments_are_usage_errors(tmp_path, args, message):
    run = svae(*args, cwd=tmp_path)
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]


def test_dataset_names_are_case_insensitive(tmp_path, mirror, cache):
    """The data folders are spelled Cora, CiteSeer, PubMed: `--dataset Cora` was refused."""
    out = tmp_path / "run.json"
    run = svae("linkpred", "--dataset", "Cora", "--latent", "normal", "--epochs", "2", "--json", str(out),
               "--data-dir", str(mirror), "--cache-dir", str(cache))
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(out.read_text())["config"]["dataset"] == "cora"


def test_info_shows_the_cache_and_a_missing_data_dir(tmp_path):
    run = svae("info", "--data-dir", str(tmp_path / "missing"))
    info = json.loads(run.stdout)
    assert info["data_dir_exists"] is False and info["cache_dir"]


# --- progress in logs ------------------------------------------------------------------------------------


def test_progress_is_one_line_per_epoch_when_stderr_is_not_a_terminal(mirror, cache):
    """A tqdm bar writes carriage-return frames: `make demo > log` was mostly bar frames."""
    run = svae("linkpred", "--dataset", "cora", "--latent", "vmf", "--epochs", "4", "--data-dir", str(mirror),
               "--cache-dir", str(cache))
    assert run.returncode == 0 and "\r" not in run.stderr, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.startswith("cora/vmf: ")]
    assert [line.split()[1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"] and "val_auc" in lines[-1]
