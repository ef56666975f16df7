# Two commands do all set-up on a fresh Linux machine with Python >= 3.10 and no GPU:
#   make demo   - virtual environment, install jalm[all], run `jalm demo` (under 10 minutes on a 2-core CPU)
#   make test   - the same, plus the dev extra and transformers 4.x beside it; ruff, the layering check
#                 and the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
# CPU wheels keep the install small (a CUDA build of torch is several GB). On a GPU box set
# TORCH_INDEX= (empty) or to a CUDA index. Where the index is unreachable, pip falls back to
# its configured sources (on our CI machines a local CPU wheel).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# transformers 4.x lives beside the main (5.x) install so tests can prove both majors read our files.
TF4 := $(VENV)/tf4
TF4_PACKAGES := transformers==4.57.6 tokenizers==0.22.2 huggingface_hub==0.36.2 requests urllib3 charset-normalizer certifi

.PHONY: install demo test lint clean-venv

install: $(VENV)/.installed

# What the pipeline needs (the demo's install): torch, then jalm with every stage's extra.
$(VENV)/.installed-all: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PY) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$(TORCH_VERSION)')" 2>/dev/null || \
	  $(PIP) install --quiet torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) 2>/dev/null || \
	  $(PIP) install --quiet torch==$(TORCH_VERSION)
	$(PIP) install --quiet -e ".[all]"
	touch $@

# What the tests and benchmarks need on top: the dev extra and transformers 4.x in a side folder.
$(VENV)/.installed: $(VENV)/.installed-all
	$(PIP) install --quiet -e ".[all,dev]"
	$(PIP) install --quiet --no-deps --target $(TF4) $(TF4_PACKAGES)
	touch $@

demo: $(VENV)/.installed-all
	$(VENV)/bin/jalm demo

lint: install
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(PY) scripts/check_imports.py

test: lint
	scripts/ensure-chromium.sh
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
