"""Shared fixtures: the read-only data mirror and a per-session writable cache; the command line."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from svae import native

# Training code constructs distributions with validate_args=False; tests keep torch's default.
REPO = Path(__file__).resolve().parents[1]


def run_svae(*args, check: bool = False, cwd=None, env=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The real ``svae`` command in a subprocess (as a user runs it), its output captured."""
    return subprocess.run([sys.executable, "-m", "svae.cli", *map(str, args)], capture_output=True, text=True,
                          check=check, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The data mirror: $SVAE_DATA_DIR (set by make test and .ci/run), else ../shared/data."""
    path = Path(os.environ.get("SVAE_DATA_DIR") or REPO.parent / "shared" / "data")
    assert (path / "planetoid").is_dir() and (path / "mnist").is_dir(), f"data mirror not found at {path}"
    return path


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """A writable cache shared by the tests of one session (processed data sets are reused)."""
    return tmp_path_factory.mktemp("svae-cache")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=["compiled", "torch"])
def backend(request):
    """Runs a test with the compiled CPU loops (svae.native), then with the torch code alone, the
    path of every other device. The loops must build here: the benchmarks' figures rest on them."""
    if request.param == "torch":
        with native.disabled():
            yield request.param
    else:
        assert native.kernels() is not None, "the compiled loops of svae/kernels.cpp did not build"
        yield request.param


# Every device this machine has: the CPU always, CUDA when torch sees one, so that the same suite
# is the GPU suite (scripts/gpu_check.sh). Not a skip: a device that is absent is not a parameter.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """The device a distribution, special-function or training-step test runs on."""
    return torch.device(request.param)
