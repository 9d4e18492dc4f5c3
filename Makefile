# `make demo` runs the main job, `make test` the test suite; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export SVAE_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: demo test docs docs-check bench reference clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/svae demo --out demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

# The site (Sphinx, MyST Markdown pages, API reference from the docstrings) in docs/_build/html;
# warnings are errors.
docs: $(VENV)/.installed
	$(PY) -m sphinx -W --keep-going -E -b html docs docs/_build/html

# The site in headless Chromium (index, an API page, a results page to PNG in docs/_build/check/):
# MathJax must typeset every formula and no internal link or anchor may be broken. Needs Debian's
# chromium, libjs-mathjax and fonts-mathjax (apt-get install).
docs-check: $(VENV)/.installed
	$(PY) scripts/docs_check.py

bench: $(VENV)/.installed
	$(PY) benchmarks/sampling.py --json benchmarks/results/sampling.json
	$(PY) benchmarks/special.py --json benchmarks/results/special.json
	$(PY) benchmarks/train_step.py --json benchmarks/results/train_step.json
	$(PY) benchmarks/train_step.py --threads 1 --skip-ll --json benchmarks/results/train_step_1thread.json
	$(PY) benchmarks/train_step.py --threads 1 --batch 512 --repeats 60 --skip-ll --json benchmarks/results/train_step_batch512_1thread.json
	$(PY) benchmarks/linkpred.py --json benchmarks/results/linkpred.json
	$(PY) scripts/distribution_accuracy.py --json benchmarks/results/accuracy_distributions.json
	$(PY) benchmarks/soak.py --json benchmarks/results/soak.json  # 1e9 draws: about an hour here

reference: $(VENV)/.installed
	$(PY) scripts/bessel_reference.py

clean:
	rm -rf $(VENV) .pytest_cache docs/_build
