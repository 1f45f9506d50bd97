# Two commands do everything on a fresh machine:  make lab  /  make test
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: lab test venv bench clean-notebooks models

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall whenever the dependency lists change.  torch is pinned to the CPU
# wheel (a plain `torch` would pull a multi-GB CUDA build).
$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

# Loopback only; --allow-root only when run as root (containers, CI machines).
LAB_ARGS ?= --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root,)
lab: $(STAMP)
	OCRVIZ_DATA=$(CURDIR)/data $(BIN)/jupyter lab $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean-notebooks:
	$(BIN)/python -m ocrviz.tools.strip_notebooks notebooks

# Re-train the three shipped ToyCity models (same backbone, schedule and seed),
# side by side as three one-thread runs, as the shipped ones were: about 42 min
# on 2 CPU cores.  The model cards record the exact command and the metrics.
TRAIN_ARGS ?= --steps 2800 --batch-size 4 --val-every 700 --val-images 100 --threads 1 --model-kwargs '{"dilated": false}'
models: $(STAMP)
	$(BIN)/python -m ocrviz.train --arch ocrnet $(TRAIN_ARGS) --out data/checkpoints/toycity-ocr & p1=$$!; \
	$(BIN)/python -m ocrviz.train --arch aspp $(TRAIN_ARGS) --out data/checkpoints/toycity-aspp & p2=$$!; \
	$(BIN)/python -m ocrviz.train --arch fcn $(TRAIN_ARGS) --out data/checkpoints/toycity-fcn & p3=$$!; \
	wait $$p1 && wait $$p2 && wait $$p3
