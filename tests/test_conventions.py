"""Conventions every command follows: data directory resolution, JSON records, the CLI."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from svae.data.store import resolve_data_dir
from svae.atomic import atomic_write_text
from svae.records import read_record, write_record


def test_data_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("SVAE_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("SVAE_DATA_DIR")
    monkeypatch.delenv("SVAE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir(None) == tmp_path / "cache" / "svae"  # the cache doubles as data directory
    monkeypatch.setenv("SVAE_CACHE_DIR", str(tmp_path / "mine"))
    assert resolve_data_dir(None) == tmp_path / "mine"


def test_record_has_metrics_and_provenance(tmp_path):
    path = write_record(tmp_path / "r" / "run.json", command="x", config={"a": 1},
                        metrics={"test_auc": 0.9}, wall_time=1.5)
    record = read_record(path)
    assert record["metrics"] == {"test_auc": 0.9}
    assert {"versions", "git_sha", "git_dirty", "machine", "wall_time", "config"} <= set(record)
    assert record["versions"]["torch"]


def _commit_all(repo, message):
    """Commit every file under ``repo`` to a scratch repository (created on first use)."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false",
           "-C", str(repo)]
    if not (repo / ".git").exists():
        subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", message], check=True)


def test_git_dirty_tells_whether_the_package_differs_from_its_commit(tmp_path, monkeypatch):
    from svae import records

    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "code.py").write_text("x = 1\n")
    (tmp_path / "results.md").write_text("old\n")
    _commit_all(tmp_path, "c")
    monkeypatch.setattr(records, "_PACKAGE_DIR", package)
    assert records.git_sha() and records.git_dirty() is False
    (tmp_path / "results.md").write_text("rewritten by a run\n")  # outside the package
    (package / "new.py").write_text("")  # untracked
    assert records.git_dirty() is False
    (package / "code.py").write_text("x = 2\n")
    assert records.git_dirty() is True
    monkeypatch.setattr(records, "_PACKAGE_DIR", tmp_path.parent)  # not a repository
    assert records.git_sha() is None and records.git_dirty() is None


def test_records_name_the_commit_the_process_started_with(tmp_path, monkeypatch):
    from svae import records

    (tmp_path / "code.py").write_text("x = 1\n")
    _commit_all(tmp_path, "first")
    monkeypatch.setattr(records, "_PACKAGE_DIR", tmp_path)
    records.code_version.cache_clear()
    try:
        started = records.code_version()["git_sha"]
        (tmp_path / "code.py").write_text("x = 2\n")  # a commit made while a run trains
        _commit_all(tmp_path, "second")
        assert records.git_sha() != started
        path = write_record(tmp_path / "run.json", command="x", config={}, metrics={}, wall_time=0)
        assert read_record(path)["git_sha"] == started and read_record(path)["git_dirty"] is False
    finally:
        records.code_version.cache_clear()


def test_metric_names_must_be_snake_case(tmp_path):
    with pytest.raises(ValueError, match="snake_case"):
        write_record(tmp_path / "run.json", command="x", config={}, metrics={"testAUC": 1.0}, wall_time=0)


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    atomic_write_text(path, "old")

    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_atomic_write_gives_the_permissions_of_an_ordinary_file(tmp_path):
    old_umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "table.md", "x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by others, as `open` would make it


def test_cli_info_and_version():
    out = subprocess.run([sys.executable, "-m", "svae.cli", "info", "--data-dir", "/somewhere"],
                         capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    assert info["data_dir"] == "/somewhere" and info["compiled_cpu_loops"] is True
    script = Path(sys.executable).with_name("svae")  # the console script installed with the package
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("svae ")


def test_cache_files_are_hashed_once_and_rechecked_when_changed(tmp_path, monkeypatch):
    import hashlib

    from svae.data import store

    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "f.bin").write_bytes(b"payload")
    digest = hashlib.sha256(b"payload").hexdigest()
    path = store.fetch("f.bin", digest, data_dir=tmp_path / "mirror", cache_dir=tmp_path / "cache")
    calls = []
    monkeypatch.setattr(store, "sha256", lambda p, **options: calls.append(p) or digest)
    store.fetch("f.bin", digest, data_dir=tmp_path / "mirror", cache_dir=tmp_path / "cache")
    store.fetch("f.bin", digest, data_dir=tmp_path / "mirror", cache_dir=tmp_path / "cache")
    assert len(calls) == 1  # the first fetch from the cache stamps the file, the second trusts the stamp
    monkeypatch.undo()
    path.write_bytes(b"tampered")
    with pytest.raises(store.ChecksumError, match="f.bin: SHA-256"):
        store.fetch("f.bin", digest, data_dir=tmp_path / "mirror", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "linkpred", "--seeds", "0"], "--seeds and --jobs must be >= 1"),
    (["reproduce", "m1m2", "--dims", "10"], "--dims takes latent dimensions >= 1 and applies to reproduce mnist and "
                                            "highdim only"),
    (["reproduce", "highdim", "--dims", "0"], "--dims takes latent dimensions >= 1"),
    (["reproduce", "linkpred", "--latents", "vmf"], "--latents applies to reproduce mnist and highdim only"),
    (["reproduce", "mnist", "--latents", "gauss"], "invalid choice: 'gauss'"),
    (["reproduce", "mnist", "--sphere-dof", "5"], "--sphere-dof takes degrees of freedom >= 1 per sphere and applies "
                                                 "to reproduce highdim and linkpred only"),
    (["reproduce", "highdim", "--sphere-dof", "0"], "--sphere-dof takes degrees of freedom >= 1"),
    *[(["reproduce", experiment, "--table-only", "--out", "{tmp}", "--table", "{tmp}/table.md"],
       "--table-only: no record of this grid") for experiment in ("linkpred", "mnist", "m1m2", "highdim")],
])
def test_reproduce_rejects_bad_arguments(argv, message, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    out = subprocess.run([sys.executable, "-m", "svae.cli", *argv], capture_output=True, text=True)
    assert out.returncode == 2 and message in out.stderr
    assert not (tmp_path / "table.md").exists()


def test_grid_threads_follow_the_affinity_mask_not_the_machine():
    # Under taskset or a batch scheduler's cpuset, os.cpu_count() still counts every core of the
    # machine; sharing those out among --jobs would oversubscribe the cores the run may use.
    script = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
              "from svae.experiments.grid import usable_cpus; print(usable_cpus(), os.cpu_count())")
    one, machine = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                  check=True).stdout.split()
    assert one == "1" and int(machine) >= 1


@pytest.mark.parametrize("command", ["mnist", "linkpred", "m1m2"])
def test_device_must_be_one_this_machine_has(command, capsys):
    import torch

    from svae.cli import build_parser

    parser = build_parser()
    base = {"mnist": ["mnist", "--latent", "vmf", "--dim", "2"], "linkpred": ["linkpred", "--dataset", "cora", "--latent", "vmf"],
            "m1m2": ["m1m2", "--m1", "vmf", "--m2", "vmf", "--z1", "5", "--z2", "5"]}[command]
    # the default: cuda when this machine has it, else cpu
    assert parser.parse_args(base).device == ("cuda" if torch.cuda.is_available() else "cpu")
    absent = f"cuda:{torch.cuda.device_count()}"  # one index past the last GPU: absent on any machine
    for value, message in ((absent, f"argument --device: '{absent}' is not available on this machine"),
                           ("gpu", "argument --device: expected cpu, cuda or cuda:N, got 'gpu'"),
                           ("mps", "argument --device: expected cpu, cuda or cuda:N, got 'mps'")):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([*base, "--device", value])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_diverged_run_ends_with_its_message_not_a_traceback(monkeypatch, capsys):
    import torch

    from svae import cli
    from svae.experiments import mnist
    from svae.train import NonFiniteLossError

    def diverge(*args, **kwargs):
        raise NonFiniteLossError("non-finite loss (nan) at epoch 3, step 99; training stopped, "
                                 "the checkpoint of epoch 2 is kept at c.pt")

    monkeypatch.setattr(mnist, "run", diverge)
    # the command turns argument validation off for the process; the tests after this one keep it on
    monkeypatch.setattr(torch.distributions.Distribution, "_validate_args", torch.distributions.Distribution._validate_args)
    assert cli.main(["mnist", "--latent", "vmf", "--dim", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("svae mnist: profile fast: at most 60 epochs")  # the budget, as the run starts
    assert err.splitlines()[1:] == ["svae: error: non-finite loss (nan) at epoch 3, step 99; training stopped, the "
                                    "checkpoint of epoch 2 is kept at c.pt"]
