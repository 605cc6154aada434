# The course's two commands: `make lab` (set up, open JupyterLab) and
# `make test` (set up, run every test). Both are idempotent.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   := data/manifest.json
NOTEBOOK ?= notebooks/00_environment_setup.ipynb

.PHONY: setup lab test bench data notebook clean help

help:
	@echo "make lab       set up .venv and the data, then open JupyterLab on notebooks/"
	@echo "make test      set up, then run the unit tests and nbval over every notebook"
	@echo "make setup     only set up (.venv, pinned requirements, mmcourse, data)"
	@echo "make bench     run the benchmarks (python -m mmcourse bench)"
	@echo "make notebook NOTEBOOK=notebooks/NN_x.ipynb   re-execute one notebook in place"
	@echo "make clean     remove .venv, generated data and caches"

# Reinstall only when the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 12) else "mmcourse needs Python 3.10-3.12, found %d.%d: run make with PYTHON=python3.11 (docs/SETUP.md)" % v)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Regenerate the course data when it is missing or its generator changed.
$(DATA): $(STAMP) mmcourse/data/scenes.py mmcourse/data/draw.py mmcourse/data/statements.py \
		mmcourse/data/grammar_zh.py mmcourse/data/store.py
	$(PY) -m mmcourse data

data: $(DATA)

setup: $(STAMP) $(DATA)

lab: setup
	$(PY) -m jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

test: setup
	$(PY) -m pytest -n auto --maxprocesses=4 --dist loadscope

bench: setup
	$(PY) -m mmcourse bench

notebook: setup
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m jupyter nbconvert --to notebook --execute --inplace $(NOTEBOOK)
	$(PY) -m mmcourse.classroom.notebooks $(NOTEBOOK)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info runs
	find data -mindepth 1 -maxdepth 1 ! -name README.md ! -name samples -exec rm -rf {} +
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
