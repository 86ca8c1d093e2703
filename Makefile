# convnet-search: the two commands a fresh machine needs are `make precompute` and `make test`.
# Everything else they need is installed here, from pinned files.
SHELL := /bin/bash
PY_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/convnet-search
CONFIG ?= configs/default.toml
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONHASHSEED ?= 0

.PHONY: help install precompute test test-py test-js bench bench-scale serve frontend clean chromium

help:
	@echo "make precompute   run the default config (configs/default.toml) -> frontend/public/data"
	@echo "make test         Python tests + frontend unit tests + headless Chromium end-to-end tests"
	@echo "make bench        benchmarks -> bench/results.json"
	@echo "make bench-scale  the pipeline at 100,000 images (hours) -> bench/results-scale.json"
	@echo "make bench-live-scale  private search at N=100,000 (SCALE_N) -> bench/out/live-scale.json"
	@echo "make serve        build the explorer and serve it on http://127.0.0.1:8000 (BUNDLE=DIR: that bundle)"

# --- installs (stamp files, so they run only when the pinned inputs change) ---
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed frontend/node_modules/.installed

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

chromium:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# --- the main job ---
precompute: $(VENV)/.installed
	$(CLI) precompute --config $(CONFIG)

# --- tests ---
test: test-py test-js

test-py: $(VENV)/.installed frontend/node_modules/.installed  # test_tfjs_export runs TF.js in Node
	$(PY) -m pytest -q

test-js: $(VENV)/.installed frontend/node_modules/.installed chromium
	cd frontend && npm run -s test

# The browser benchmark (headless Chromium) runs first; run.py reads its bench/out/browser.json.
# The long sections (real-weights quality, judgements, bigphoto, atlas, ray) are in bench-scale.
bench: $(VENV)/.installed frontend/node_modules/.installed chromium
	node bench/bench_browser.mjs --out bench/out/browser.json
	$(PY) bench/run.py --out bench/results.json --merge

# Not in CI: the long sections of run.py (~30 min, merged into bench/results.json), then the whole
# pipeline at N = 100,000 images (hours on two cores) -> bench/results-scale.json.
# SCALE_ARGS="--images 2000 --root /tmp/scale-small --out /tmp/scale.json" for a quick check.
bench-scale: $(VENV)/.installed frontend/node_modules/.installed chromium
	$(PY) bench/run.py --long --out bench/results.json --merge
	$(PY) bench/scale.py $(SCALE_ARGS)

# Private search at scale (minutes; several GB of temp files at 100k): compressed features under the
# 32 MB budget vs float32 exact, in headless Chromium. LIVE_SCALE_ARGS e.g. --base DIR --images DIR.
SCALE_N ?= 100000
bench-live-scale: $(VENV)/.installed frontend/node_modules/.installed chromium
	node bench/bench_live_scale.mjs --n $(SCALE_N) $(LIVE_SCALE_ARGS) --out bench/out/live-scale.json

frontend: frontend/node_modules/.installed
	cd frontend && npm run -s build

# BUNDLE=DIR serves a bundle a precompute run wrote elsewhere (its --out) as the explorer's data/.
serve: frontend
	@test -n "$(BUNDLE)" || test -f frontend/dist/data/manifest.json || echo "note: no bundle in frontend/dist/data; run 'make precompute' first, or give BUNDLE=DIR"
	$(PY) frontend/scripts/serve.py --dir frontend/dist $(if $(BUNDLE),--data "$(abspath $(BUNDLE))") --bind 127.0.0.1 --port 8000  # CSP as a header too

clean:
	rm -rf .convnet-search frontend/dist frontend/public/data
