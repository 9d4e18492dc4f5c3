"""The documentation: docstring examples run and print what they say, and the site builds with no
warning (`make docs`)."""
import doctest
import importlib
import pkgutil
import re
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


def _markdown_tables(text: str) -> list[list[str]]:
    """The Markdown tables of ``text``, each as its lines (header, separator, rows)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line.strip())
        elif current:
            tables.append(current)
            current = []
    return tables


def test_tables_copied_from_generated_results_match_them():
    """A page that shows rows of a generated table (`results/*.md`, named on the page) must show
    them as the table is now: the copies cannot drift from the records when runs are added."""
    checked = 0
    for page in sorted((ROOT / "docs").rglob("*.md")):
        if "_build" in page.parts:
            continue
        text = page.read_text()
        sources = {name: (ROOT / name).read_text() for name in set(re.findall(r"`(results/[\w/.-]+\.md)`", text))
                   if (ROOT / name).is_file()}
        generated = {}  # header -> (the files with a table of that header, their rows)
        for name, source in sources.items():
            for table in _markdown_tables(source):
                names, rows = generated.setdefault(table[0], ([], set()))
                names.append(name)
                rows.update(table[2:])
        for table in _markdown_tables(text):
            if table[0] not in generated:
                continue  # a table of the page's own, not a copy
            names, rows = generated[table[0]]
            stale = [row for row in table[2:] if row not in rows]
            assert not stale, f"{page.relative_to(ROOT)} shows rows that {' / '.join(names)} no longer has: {stale}"
            checked += 1
    assert checked >= 2  # docs/highdim.md copies the study's table and the link-prediction one
