# fasdistill: set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= out/demo

.PHONY: venv demo test test-all lint bench screenshot clean

# torch goes in first, pinned: on these machines `torch==2.13.0` is a local CPU
# wheel, while an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(STAMP)

# The main job on built-in data: SynthSpoof -> crops -> ResNet-18 teacher -> swapnet
# students (scratch and distilled) -> export -> SWAP report (out/demo/swap/report.html).
# Resumable: a rerun skips finished stages.
demo: $(STAMP)
	$(BIN)/fasdistill quickstart --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/metrics_speed.py
	$(BIN)/python benchmarks/synth_speed.py
	$(BIN)/python benchmarks/synth_difficulty.py
	$(BIN)/python benchmarks/prepare_speed.py
	$(BIN)/python benchmarks/detect_photos.py
	$(BIN)/python benchmarks/model_latency.py
	$(BIN)/python benchmarks/train_speed.py

# The README's picture: the quick start's report.html rendered by headless Chromium.
screenshot:
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1230 \
		--virtual-time-budget=10000 --screenshot=docs/img/swap-report.png \
		file://$(abspath $(DEMO_OUT))/swap/report.html

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
