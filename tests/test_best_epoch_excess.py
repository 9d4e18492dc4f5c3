"""scripts/best_epoch_excess.py: how far a run's best validation score lies above its neighbours."""
import json
import re
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
    lucky = record(tmp_path / "lucky.json", [-10.0, -9.0, -8.0, -5.0, -8.0, -9.0, -9.5], best=4)
    at_end = record(tmp_path / "at_end.json", [-3.0, -2.0, -1.0], best=3)  # only one side exists
    out = tmp_path / "excess.json"
    subprocess.run([sys.executable, str(SCRIPT), str(lucky), str(at_end), "--window", "2", "--json", str(out)],
                   check=True, capture_output=True)
    metrics = json.loads(out.read_text())["metrics"]
    folders = re.sub(r"[^a-z0-9_]", "_", f"{tmp_path.parent.name}_{tmp_path.name}".lower())  # snake_case keys
    assert metrics[f"{folders}_lucky_excess"] == pytest.approx(-5.0 - (-9.0 - 8.0 - 8.0 - 9.0) / 4)
    assert metrics[f"{folders}_at_end_excess"] == pytest.approx(-1.0 - (-3.0 - 2.0) / 2)
