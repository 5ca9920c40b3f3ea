# gradwatch: `make demo` and `make test` set up .venv on first use.
#   make demo    the library and its own requirements only, then `gradwatch demo`
#   make test    adds the dev tools and the integrations' frameworks, then the test suite
#                (PYTEST_ARGS='-m "not wheel"' leaves out the wheel test, for example)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q -c constraints/dev.txt
PYTEST_ARGS ?=
DEMO_STAMP := $(VENV)/.installed-demo
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: venv demo test browser bench clean

# torch, numpy, pandas, rich, typer, matplotlib, scikit-learn: all that `gradwatch demo` and
# `gradwatch lab` import
$(DEMO_STAMP): pyproject.toml constraints/dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

# pytest & co., and Lightning, Transformers, Accelerate, TensorBoard, MLflow, W&B for the
# integrations' tests
$(DEV_STAMP): $(DEMO_STAMP)
	$(PIP) -e '.[dev,integrations]'
	touch $@

venv: $(DEV_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/gradwatch demo

# headless Chromium for the HTML tests (Debian package; needs root)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: run 'sudo apt-get install -y chromium' (browser tests will be skipped)"; fi; }

test: $(DEV_STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
