"""The documentation: docstring examples run and print what they say, and the site builds with no
warning (`make docs`)."""
import doctest
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import torch

import svae

ROOT = Path(__file__).resolve().parents[1]


def _modules():
    for info in pkgutil.walk_packages(svae.__path__, "svae."):
        if info.name != "svae.__main__":
            yield importlib.import_module(info.name)


def test_docstring_examples_print_what_they_say():
    """Every ``>>>`` example of the package, with ``torch``, svae's public names and the module's own in scope."""
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    examples = 0
    public = {name: getattr(svae, name) for name in svae.__all__}
    for module in _modules():
        for test in finder.find(module, globs={"torch": torch, **public, **vars(module)}):
            if test.examples:
                torch.manual_seed(0)
                examples += len(test.examples)
                runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} docstring examples failed (their output is above)"
    assert examples >= 15  # 19 today: the distributions, the special functions, the fit and their Pyro twins


def test_the_site_builds_without_warnings(tmp_path):
    """`make docs` in miniature: Sphinx with warnings as errors, every page and API module."""
    build = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
                            str(ROOT / "docs"), str(tmp_path)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    api = (tmp_path / "api" / "distributions.html").read_text()
    assert "VonMisesFisher" in api and "rejection_log_weight" in api and r"\(C_m" in api  # math left to MathJax
    assert (tmp_path / "highdim.html").exists() and (tmp_path / "pyro.html").exists()
