"""The soak of benchmarks/soak.py at 1e7 draws (the committed record has 1e9): every count 0."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_soak_finds_no_bad_value(tmp_path):
    record = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--draws", "1e7", "--seed", "1",
                          "--json", str(record)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(record.read_text())
    assert result["status"] == "complete" and result["failures"] == []
    metrics = result["metrics"]
    assert metrics["draws"] >= 9_000_000
    assert all(value == 0 for key, value in metrics.items() if key != "draws"), metrics
    assert set(result["dimensions"]) == {str(m) for m in result["grid"]["dimensions"]}


def test_soak_resumes_from_its_record(tmp_path):
    """An interrupted soak (a record with status "running") resumes from the dimensions it finished."""
    record = tmp_path / "soak.json"
    command = [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--draws", "2e4", "--json", str(record)]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    result = json.loads(record.read_text())
    kept = {m: result["dimensions"][m] for m in list(result["dimensions"])[:-3]}
    result.update(status="running", dimensions=kept)
    record.write_text(json.dumps(result))
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "resuming" in run.stdout, run.stdout + run.stderr
    assert run.stdout.count("m = ") == 3
    assert json.loads(record.read_text())["status"] == "complete"
