"""scripts/best_epoch_excess.py: how far a run's best validation score lies above its neighbours."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "best_epoch_excess.py"


def record(path, scores, best):
    history = [{"epoch": e, "val_elbo": s} for e, s in enumerate(scores, start=1)]
    path.write_text(json.dumps({"metrics": {"best_epoch": best}, "history": history}))
    return path


def test_excess_over_the_neighbours_within_the_window(tmp_path):
    grid = tmp_path / "mnist-v2" / "paper"  # a key names the two folders above a record, in snake_case
    grid.mkdir(parents=True)
    lucky = record(grid / "lucky.json", [-10.0, -9.0, -8.0, -5.0, -8.0, -9.0, -9.5], best=4)
    at_end = record(grid / "at_end.json", [-3.0, -2.0, -1.0], best=3)  # only one side exists
    out = tmp_path / "excess.json"
    subprocess.run([sys.executable, str(SCRIPT), str(lucky), str(at_end), "--window", "2", "--json", str(out)],
                   check=True, capture_output=True)
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["mnist_v2_paper_lucky_excess"] == pytest.approx(-5.0 - (-9.0 - 8.0 - 8.0 - 9.0) / 4)
    assert metrics["mnist_v2_paper_at_end_excess"] == pytest.approx(-1.0 - (-3.0 - 2.0) / 2)


def test_two_records_of_one_key_are_refused(tmp_path):
    # results/mnist/paper/x.json and results/mnist_v2/paper/x.json differ; these two would not
    (tmp_path / "a" / "mnist-v2" / "paper").mkdir(parents=True)
    (tmp_path / "b" / "mnist_v2" / "paper").mkdir(parents=True)
    runs = [record(tmp_path / top / folder / "paper" / "run.json", [-2.0, -1.0], best=2)
            for top, folder in (("a", "mnist-v2"), ("b", "mnist_v2"))]
    result = subprocess.run([sys.executable, str(SCRIPT), *map(str, runs)], capture_output=True, text=True)
    assert result.returncode == 2 and "mnist_v2_paper_run_excess" in result.stderr
