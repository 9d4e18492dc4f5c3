"""`make docs-check`: the built site in a real browser, and its links.

Builds the site with MathJax served from the Debian package (the default loads it from a CDN, which
an offline machine cannot reach), then with headless Chromium renders the index, an API page with
math and a results page to PNG, and fails if MathJax did not typeset every formula or reported an
error, if a screenshot is blank, or if LinkChecker finds a broken internal link or anchor.

Needs: ``apt-get install chromium libjs-mathjax fonts-mathjax`` (Debian) and LinkChecker (pinned in
requirements.txt). Usage: python scripts/docs_check.py [--out docs/_build/check]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATHJAX = Path("/usr/share/javascript/mathjax/MathJax.js")
PAGES = {"index": "index.html", "api": "api/distributions.html", "results": "highdim.html"}
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                 "--virtual-time-budget=20000"]


def fail(message: str) -> None:
    sys.exit(f"docs-check: {message}")


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    fail("no Chromium found: apt-get install chromium libjs-mathjax fonts-mathjax")


def build(html: Path) -> None:
    if not MATHJAX.exists():
        fail(f"{MATHJAX} is missing: apt-get install libjs-mathjax fonts-mathjax")
    subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
                    "-D", f"mathjax_path=file://{MATHJAX}?config=TeX-AMS-MML_HTMLorMML",
                    str(ROOT / "docs"), str(html)], check=True)


def check_math(chrome: str, page: Path) -> int:
    """Every formula Sphinx wrote was typeset by MathJax, none with an error; returns their number."""
    formulas = len(re.findall(r'class="math notranslate', page.read_text()))
    dom = subprocess.run([chrome, *BROWSER_FLAGS, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    typeset = len(re.findall(r'<script type="math/tex', dom))  # MathJax 2 keeps each source as such a script
    errors = len(re.findall(r'class="MathJax_Error"|Math (?:Processing|input) Error', dom))
    if typeset < formulas or errors:
        fail(f"{page}: MathJax typeset {typeset} of {formulas} formulas, {errors} with an error")
    return formulas


def screenshot(chrome: str, page: Path, png: Path) -> None:
    subprocess.run([chrome, *BROWSER_FLAGS, "--window-size=1280,1600", f"--screenshot={png}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    if pixels.std() < 0.02:  # one flat colour: nothing rendered
        fail(f"{png} is blank")


def check_links(html: Path) -> None:
    """LinkChecker over every page reachable from the index, internal links and anchors; first on a
    page with a broken link, so that a checker that passes everything cannot pass here."""
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "linkcheckerrc"
        config.write_text("[AnchorCheck]\n")
        broken = Path(scratch) / "broken.html"
        broken.write_text('<html><body><a href="missing.html">x</a></body></html>')
        command = [sys.executable, "-m", "linkcheck", "-f", str(config), "--no-status", "-o", "failures"]
        if subprocess.run(command + [str(broken)], capture_output=True).returncode == 0:
            fail("LinkChecker passed a page with a broken link: it is not checking")
        result = subprocess.run(command + [str(html / "index.html")], capture_output=True, text=True)
        if result.returncode != 0:
            fail(f"broken internal links:\n{result.stdout}{result.stderr}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs/_build/check"), help="site and screenshots (default docs/_build/check)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()  # file:// URIs need absolute paths
    html, shots = out / "html", out / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    chrome = browser()
    build(html)
    formulas = {}
    for name, relative in PAGES.items():
        formulas[name] = check_math(chrome, html / relative)
        screenshot(chrome, html / relative, shots / f"{name}.png")
        print(f"{relative}: {formulas[name]} formulas typeset, screenshot {shots / name}.png")
    if formulas["api"] == 0:
        fail(f"{PAGES['api']} has no formula: the math check checked nothing")
    check_links(html)
    print("docs-check: every page rendered, every formula typeset, no broken internal link")
    return 0


if __name__ == "__main__":
    sys.exit(main())
