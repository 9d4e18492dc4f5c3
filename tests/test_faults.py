"""Fault injection through the real command line (issue [7]): divergence, bad paths and arguments,
records reused or overwritten, two processes on one grid, Ctrl-C and SIGKILL then resume, corrupt
checkpoints, data and records, no network, an unwritable cache. Each case runs `svae` in a
subprocess on tiny settings (or the function a command relies on) and checks the exit code, the
message, the absence of a traceback, and that no file is lost or half written."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grid_worker
import pytest
import torch
from conftest import run_svae

from svae import metrics


svae = run_svae


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


@pytest.mark.parametrize("argv, option, message", [
    (["demo", "--quick", "--out", "{file}"], "--out", "is a file: give the path of a folder"),
    (["demo", "--quick", "--out", "/proc/svae-no-such-dir"], "--out", "cannot write in it"),
    (["reproduce", "linkpred", "--out", "{file}"], "--out", "is a file"),
    (["reproduce", "linkpred", "--out", "{file}/records"], "--out", "cannot write in it"),
    (["reproduce", "mnist", "--table", "{tmp}"], "--table", "is a directory"),
    (["reproduce", "m1m2", "--table", ""], "--table", "an empty path"),
    (["plot", "curves", "{file}", "--out", "{tmp}"], "--out", "is a directory"),
    (["mnist", "--latent", "vmf", "--dim", "2", "--data-dir", "{tmp}/missing"], "--data-dir", "not a folder"),
    (["linkpred", "--dataset", "cora", "--latent", "vmf", "--data-dir", "{file}"], "--data-dir", "not a folder"),
])
def test_output_folders_tables_figures_and_data_dirs_are_checked_first(tmp_path, argv, option, message):
    """`demo --out FILE` and `reproduce --out FILE` were tracebacks, `reproduce --table DIR` trained
    first, and a mistyped --data-dir was ignored in favour of the cache."""
    plain_file = tmp_path / "plain"
    plain_file.write_text("")
    run = svae(*(a.format(tmp=tmp_path, file=plain_file) for a in argv), cwd=tmp_path)
    assert run.returncode == 2 and message in run.stderr and option in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and run.stdout == ""


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


# --- reproduce: which records a grid reuses, and saying so ---------------------------------------------


def _stamp_other_code(path, sha="4b3e9670000000000000000000000000deadbeef"):
    """Make a record look as if older code wrote it (as the committed ones are, to a fresh clone)."""
    record = json.loads(path.read_text())
    record.update(code_hash="0123456789abcdef", git_sha=sha)
    path.write_text(json.dumps(record))


def test_a_grid_reuses_only_records_of_this_code_and_says_so(tmp_path, capsys):
    """`reproduce linkpred` in a fresh clone reused the committed records silently and rewrote the table."""
    grid_worker.grid(tmp_path)
    assert sorted(grid_worker.trainings(tmp_path)) == list("abcd")
    assert "training 4 runs (4 no record)" in capsys.readouterr().out

    grid_worker.grid(tmp_path)  # an interrupted or finished grid resumes: nothing trained again
    assert len(grid_worker.trainings(tmp_path)) == 4
    assert "reusing 4 records written by this code" in capsys.readouterr().out

    _stamp_other_code(tmp_path / "c.json")
    grid_worker.grid(tmp_path)
    out = capsys.readouterr().out
    assert grid_worker.trainings(tmp_path)[4:] == ["c"]
    assert "reusing 3 records" in out and "training 1 runs (1 a record from another code version)" in out
    assert "4b3e9670" in out and "--reuse keeps them" in out

    _stamp_other_code(tmp_path / "c.json")
    grid_worker.grid(tmp_path, reuse="any")  # --reuse: whatever code wrote them
    assert len(grid_worker.trainings(tmp_path)) == 5 and "reusing 4 records whatever code" in capsys.readouterr().out

    grid_worker.grid(tmp_path, reuse="none")  # --retrain
    assert len(grid_worker.trainings(tmp_path)) == 9 and "training 4 runs (4 --retrain)" in capsys.readouterr().out

    record = json.loads((tmp_path / "a.json").read_text())
    record["config"]["seconds"] = 7.0
    (tmp_path / "a.json").write_text(json.dumps(record))
    grid_worker.grid(tmp_path)
    assert grid_worker.trainings(tmp_path)[9:] == ["a"] and "1 another configuration" in capsys.readouterr().out


def test_overwriting_files_tracked_by_git_is_said(tmp_path, capsys):
    from svae.experiments.grid import write_table

    grid_worker.grid(tmp_path)
    write_table(tmp_path / "table.md", "| a |\n")
    assert "tracked by git" not in capsys.readouterr().out
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "records"], cwd=tmp_path, check=True)
    grid_worker.grid(tmp_path, reuse="none")
    assert "this overwrites 4 records tracked by git" in capsys.readouterr().out
    write_table(tmp_path / "table.md", "| b |\n")
    assert "(tracked by git: `git diff` shows what changed)" in capsys.readouterr().out


def test_reproduce_rejects_reuse_with_retrain_and_profile_for_linkpred(tmp_path):
    both = svae("reproduce", "linkpred", "--reuse", "--retrain", cwd=tmp_path)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    profile = svae("reproduce", "linkpred", "--profile", "paper", cwd=tmp_path)
    assert profile.returncode == 2 and "--profile applies to reproduce mnist, m1m2 and highdim" in profile.stderr


# --- concurrency: two processes, one output directory -----------------------------------------------------


def test_two_processes_on_one_grid_train_each_run_once(tmp_path):
    worker = [sys.executable, str(Path(grid_worker.__file__)), str(tmp_path), "1.5"]
    first = subprocess.Popen(worker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(worker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=120) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    assert sorted(grid_worker.trainings(tmp_path)) == list("abcd")  # each run trained by one process only
    assert all((tmp_path / f"{name}.json").exists() for name in "abcd")
    assert "being trained by another process" in outs[0][0] + outs[1][0]  # the one that waited says so


def test_a_run_whose_holder_died_is_trained_by_the_waiting_process(tmp_path):
    """A lock dies with its process (SIGKILL included): the waiting process then trains the run itself."""
    from filelock import FileLock

    from svae.experiments.grid import lock_path

    lock_path(tmp_path / "b.json").parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; from filelock import FileLock; "
                               f"lock = FileLock({str(lock_path(tmp_path / 'b.json'))!r}); lock.acquire(); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    waiting = subprocess.Popen([sys.executable, str(Path(grid_worker.__file__)), str(tmp_path), "0.2"],
                               stdout=subprocess.PIPE, text=True)
    time.sleep(3)  # it trains a, c and d, then waits for b
    assert waiting.poll() is None and sorted(grid_worker.trainings(tmp_path)) == list("acd")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    waiting.communicate(timeout=60)
    assert waiting.returncode == 0 and sorted(grid_worker.trainings(tmp_path)) == list("abcd")
    assert FileLock(lock_path(tmp_path / "b.json")).acquire(timeout=0)  # released


# --- interruption: Ctrl-C and SIGKILL mid-run, then resume ------------------------------------------------


MNIST_RUN = ("mnist", "--latent", "vmf", "--dim", "2", "--profile", "smoke", "--epochs", "40", "--hidden", "64", "32")


def _start_and_signal(argv, signal_number, ready, timeout=120):
    """Start ``svae argv``, wait until ``ready()`` is true (e.g. an epoch's checkpoint exists) or, if
    ``ready`` is a string, until a line of stderr holds it; then send it ``signal_number``."""
    process = subprocess.Popen([sys.executable, "-m", "svae.cli", *map(str, argv)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline, seen = time.monotonic() + timeout, ""
    if isinstance(ready, str):
        while ready not in seen and process.poll() is None and time.monotonic() < deadline:
            seen += process.stderr.readline()
    else:
        while not ready() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal_number)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, seen + err


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mirror, cache):
    out = tmp_path_factory.mktemp("uninterrupted") / "run.json"
    svae(*MNIST_RUN, "--json", out, "--data-dir", mirror, "--cache-dir", cache, check=True)
    return json.loads(out.read_text())


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_mnist_run_says_how_to_resume_and_resumes_exactly(tmp_path, mirror, cache, uninterrupted,
                                                                         signal_number):
    checkpoint, out = tmp_path / "run.pt", tmp_path / "run.json"
    argv = [*MNIST_RUN, "--checkpoint", checkpoint, "--json", out, "--data-dir", mirror, "--cache-dir", cache]
    code, _, err = _start_and_signal(argv, signal_number, checkpoint.exists)
    assert not out.exists()
    if signal_number == signal.SIGINT:
        assert code == 130 and "Traceback" not in err, err[-2000:]
        assert f"interrupted; the checkpoint {checkpoint} holds the last finished epoch: run the same command " \
               "again to resume" in err
    else:
        assert code == -signal.SIGKILL
    resumed = svae(*argv)
    assert resumed.returncode == 0 and f"resuming from {checkpoint}" in resumed.stderr, resumed.stderr[-2000:]
    assert not list(tmp_path.glob(".*.tmp"))  # a killed writer's temporary file is cleaned up
    record = json.loads(out.read_text())
    assert record["history"] == uninterrupted["history"]  # bit for bit: every epoch's figures
    assert record["metrics"] == uninterrupted["metrics"]


def test_an_interrupted_grid_keeps_its_records_and_goes_on(tmp_path, mirror, cache):
    out = tmp_path / "records"
    argv = ["reproduce", "mnist", "--profile", "smoke", "--dims", "2", "5", "--latents", "normal", "vmf", "--out",
            out, "--table", tmp_path / "table.md", "--data-dir", mirror, "--cache-dir", cache]
    code, _, err = _start_and_signal(argv, signal.SIGINT, lambda: any(out.glob("*.json")))
    assert code == 130 and "Traceback" not in err, err[-2000:]
    assert f"the records of the finished runs are in {out}/: run the same command again to go on" in err
    done = len(list(out.glob("*.json")))
    again = svae(*argv)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"reusing {done} records written by this code" in again.stdout
    assert f"training {4 - done} runs" in again.stdout and len(list(out.glob("*.json"))) == 4


def test_an_interrupted_command_without_checkpoint_says_nothing_was_kept(tmp_path, mirror, cache):
    code, _, err = _start_and_signal([*MNIST_RUN, "--data-dir", mirror, "--cache-dir", cache], signal.SIGINT,
                                     "vmf d=2: 1/40")
    assert code == 130 and "Traceback" not in err
    assert "nothing was kept: pass --checkpoint PATH to be able to resume" in err


# --- corrupt or unusable inputs: one line, no traceback ---------------------------------------------------


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory, mirror, cache):
    path = tmp_path_factory.mktemp("checkpoint") / "good.pt"
    svae(*MNIST_RUN[:-5], "--epochs", "1", "--hidden", "64", "32", "--checkpoint", path, "--data-dir", mirror,
         "--cache-dir", cache, check=True)
    return path


@pytest.mark.parametrize("damage, message", [
    ("truncate", "cannot be read as a checkpoint"),
    ("garbage", "cannot be read as a checkpoint"),
    ("other-config", "was written with another configuration: epochs = 1, not 40"),
])
def test_a_bad_checkpoint_is_one_line(tmp_path, mirror, cache, good_checkpoint, damage, message):
    checkpoint = tmp_path / "run.pt"
    data = good_checkpoint.read_bytes()
    checkpoint.write_bytes({"truncate": data[:len(data) // 2], "garbage": b"not a checkpoint\n",
                            "other-config": data}[damage])
    run = svae(*MNIST_RUN, "--checkpoint", checkpoint, "--data-dir", mirror, "--cache-dir", cache)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("svae: error:")]
    assert str(checkpoint) in line and message in line and "remove it" in line


def _offline_env():
    """No network, immediately: every download goes through a proxy at a closed port."""
    env = dict(os.environ)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = "http://127.0.0.1:9"
    env.pop("no_proxy", None), env.pop("NO_PROXY", None)
    return env


def test_no_network_and_an_empty_data_dir_name_the_file_and_the_folders(tmp_path):
    empty, cache_dir = tmp_path / "empty", tmp_path / "cache"
    empty.mkdir()
    run = svae(*MNIST_RUN, "--data-dir", empty, "--cache-dir", cache_dir, env=_offline_env(), timeout=300)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    message = run.stderr.splitlines()[-1]
    assert message.startswith("svae: error: train-images-idx3-ubyte is in neither the data directory")
    assert str(empty / "mnist") in message and str(cache_dir / "mnist") in message and "--data-dir" in message


def test_a_corrupt_file_in_the_read_only_mirror_is_not_to_be_deleted(tmp_path, mirror):
    copy = tmp_path / "mirror" / "mnist"
    shutil.copytree(mirror / "mnist", copy)
    victim = copy / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    run = svae(*MNIST_RUN, "--data-dir", tmp_path / "mirror", "--cache-dir", tmp_path / "cache")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    message = run.stderr.splitlines()[-1]
    assert str(victim) in message and "svae never writes to the data directory" in message
    assert "delete it" not in message
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before  # the mirror is untouched


def test_an_unwritable_cache_is_one_line_and_debug_shows_the_traceback(tmp_path, mirror):
    plain_file = tmp_path / "plain"
    plain_file.write_text("")
    argv = [*MNIST_RUN, "--data-dir", mirror, "--cache-dir", plain_file / "cache"]  # a folder that is a file
    run = svae(*argv)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.stderr.splitlines()[-1].startswith(f"svae: error: the cache {plain_file / 'cache' / 'mnist'} cannot "
                                                  "be written")
    assert "--cache-dir or $SVAE_CACHE_DIR" in run.stderr
    for debug in (["--debug", *argv], [*argv, "--debug"]):  # before or after the command's name
        traced = svae(*debug)
        assert traced.returncode == 1 and "Traceback" in traced.stderr and "CacheNotWritableError" in traced.stderr


@pytest.mark.parametrize("content, message", [
    (None, "cannot be read (No such file or directory)"),
    ("", "the file is empty"),
    ('{"metrics": {"test_auc": 0.9', "not valid JSON"),
    ("[1, 2]", "not a record written by svae"),
])
def test_plot_names_a_missing_or_malformed_record(tmp_path, content, message):
    record = tmp_path / "run.json"
    if content is not None:
        record.write_text(content)
    run = svae("plot", "curves", record, cwd=tmp_path)
    assert run.returncode == 2 and str(record) in run.stderr and message in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr


def test_plot_latent_says_which_runs_keep_codes(tmp_path):
    """The message named commands that do not keep codes at d > 2."""
    record = tmp_path / "d5.json"
    record.write_text(json.dumps({"command": "svae mnist", "config": {"latent": "vmf", "dim": 5}, "metrics": {}}))
    run = svae("plot", "latent", record, cwd=tmp_path)
    assert run.returncode == 2 and "its run has d = 5" in run.stderr and "d <= 2 for vmf" in run.stderr


# --- a diverged model's figures never become a result ---------------------------------------------------


def test_non_finite_records_are_neither_averaged_nor_crowned(tmp_path):
    """JSON carries NaN and Infinity: a record with them, or with "status": "diverged", is left out
    of a grid's table (as a missing run) instead of making a mean NaN or winning the verdict."""
    from dataclasses import asdict

    from svae.experiments.highdim import grid, write_table
    from svae.experiments.mnist import record_path

    configs = grid("smoke", 1, dims=(10,), latents=("normal", "vmf", "power"))
    lls = {("normal", 1): -100.0, ("vmf", 1): -101.0, ("vmf", 2): math.inf, ("power", 1): math.nan, ("power", 2): None}
    for config in configs:
        ll = lls[config.latent, config.spheres]
        metrics = {} if ll is None else {"test_ll": ll, "test_elbo": -105.0, "test_re": -80.0, "test_kl": 25.0,
                                         "knn_acc_100": 0.5}
        record = {"config": asdict(config), "metrics": metrics, "wall_time": 60.0,
                  **({"status": "diverged"} if ll is None else {})}
        path = record_path(tmp_path, config)
        path.write_text(json.dumps(record))  # json.dumps writes NaN and Infinity as JSON's readers accept them
    text = write_table(configs, tmp_path, tmp_path / "table.md", "smoke", command="test")
    rows = [line.split(" | ")[1:3] for line in text.splitlines() if line.startswith("| 10 |")]
    assert rows == [["N-VAE", "R^10"], ["S-VAE", "S^10"]]
    assert "nan" not in text.lower() and "inf" not in text.lower()
    assert "3 of its 5 runs have no record" in text
    assert "S-VAE on S^10, Δ LL -1.00 nats against the N-VAE over 1 seed(s): below it." in text


def test_a_model_with_non_finite_test_figures_writes_no_metrics(monkeypatch):
    import types

    from svae.experiments import mnist as mnist_experiment
    from svae.train import NonFiniteLossError

    monkeypatch.setattr(mnist_experiment, "evaluate", lambda *a, **k: {"elbo": -1.0, "recon": -0.5, "kl": 0.5})
    monkeypatch.setattr(mnist_experiment, "test_log_likelihood", lambda *a, **k: math.nan)
    config = mnist_experiment.MnistConfig(latent="vmf", dim=2)
    data = types.SimpleNamespace(test_x=torch.rand(20, 784))
    with pytest.raises(NonFiniteLossError, match=r"test set: non-finite figures \{'test_ll': nan\}"):
        mnist_experiment.evaluate_on_test_set(mnist_experiment.build_model(config), data, config)


def test_a_classifier_with_nan_logits_is_not_scored():
    """argmax takes NaN for the largest entry: NaN logits scored as 'always class 0' (10 % on MNIST)."""
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5], [0.0, 0.0, 1.0], [1.0, 2.0, 3.0]])
    assert metrics.classification_accuracy(logits, torch.tensor([1, 0, 1, 2])) == 0.75
    logits[2, 0] = math.nan
    with pytest.raises(ValueError, match="classification_accuracy: logits: 1 of 12 values are NaN or infinite"):
        metrics.classification_accuracy(logits, torch.tensor([1, 0, 1, 2]))
    with pytest.raises(ValueError, match=r"logits must have shape \(n, classes\)"):
        metrics.classification_accuracy(logits[0], torch.tensor([1]))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_diverged_run_gets_its_record_and_the_grid_goes_on(tmp_path, capsys, jobs):
    """One NaN run stopped a whole `svae reproduce` before: the runs after it were never trained."""
    from functools import partial

    from svae.experiments.grid import records_present, run_grid

    cells = [grid_worker.Cell(name, diverges=name == "b") for name in grid_worker.NAMES]
    path_of = partial(grid_worker.record_path, tmp_path)
    run_grid(cells, path_of, grid_worker.train, jobs=jobs, progress=False, command="grid test")
    assert sorted(grid_worker.trainings(tmp_path)) == list("abcd")
    record = json.loads((tmp_path / "b.json").read_text())
    assert record["status"] == "diverged" and record["metrics"] == {} and record["command"] == "grid test"
    assert "epoch 3, step 7" in record["error"] and record["config"]["name"] == "b"
    assert "1 of the runs diverged" in (out := capsys.readouterr().out) and str(tmp_path / "b.json") in out
    present, missing = records_present(cells, path_of)
    assert [cell.name for cell, _ in present] == ["a", "c", "d"] and missing == 1
    run_grid(cells, path_of, grid_worker.train, jobs=jobs, progress=False)  # the next call tries it again
    assert grid_worker.trainings(tmp_path)[4:] == ["b"] and "1 another configuration or a diverged run" in capsys.readouterr().out
