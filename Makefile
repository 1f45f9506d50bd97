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
# side by side as three one-thread runs, as the shipped ones were.  Two stages:
# 2800 steps from scratch (about 42 min on 2 CPU cores), then 7200 more steps
# with a fresh poly schedule, started from those weights on the scenes after
# them (about 2 h).  The model cards record both commands and the metrics.
COMMON_ARGS ?= --batch-size 4 --val-images 100 --threads 1 --model-kwargs '{"dilated": false}'
STAGE1_ARGS ?= --steps 2800 --val-every 700 $(COMMON_ARGS)
STAGE2_ARGS ?= --steps 7200 --val-every 1800 $(COMMON_ARGS)
STAGE1_DIR  ?= build/models
models: $(STAMP)
	pids=; for m in ocrnet:ocr aspp:aspp fcn:fcn; do \
	  $(BIN)/python -m ocrviz.train --arch $${m%%:*} $(STAGE1_ARGS) --out $(STAGE1_DIR)/toycity-$${m##*:} & \
	  pids="$$pids $$!"; done; for p in $$pids; do wait $$p || exit 1; done
	pids=; for m in ocrnet:ocr aspp:aspp fcn:fcn; do \
	  $(BIN)/python -m ocrviz.train --arch $${m%%:*} $(STAGE2_ARGS) \
	    --init-from $(STAGE1_DIR)/toycity-$${m##*:}.safetensors --out data/checkpoints/toycity-$${m##*:} & \
	  pids="$$pids $$!"; done; for p in $$pids; do wait $$p || exit 1; done
