# syntax=docker/dockerfile:1.7
# GPU image of swarm-worker: the worker, SwarmUI (prebuilt seed), ComfyUI with the GGUF nodes,
# and a CUDA 12.8 PyTorch venv. Models are not baked in; the worker downloads them to the volume.
# Build: docker build -t swarm-worker:dev .   (builder/README.md explains every piece)

# The build image's glibc must not be newer than the runtime's (Ubuntu 24.04, glibc 2.39):
# the static Swift stdlib still links glibc dynamically.
ARG SWIFT_IMAGE=swift:6.3.1-noble
# The CUDA base image (driver hooks, cudart): the torch cu128 wheels bring their own CUDA libraries and cuDNN
# (nvidia-cudnn-cu12, nvidia-cublas-cu12, ...: install-python.sh checks), so a cuDNN or runtime base would ship them twice.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04

FROM ${SWIFT_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
# The manifest names the Swift test targets' folders, so they must exist for the build to resolve.
COPY tests ./tests
COPY benchmarks ./benchmarks
COPY builder/build-worker.sh builder/swarm-worker.order ./builder/
# build-worker.sh: swift build -c release --static-swift-stdlib --product swarm-worker, with the link
# layout that keeps the idle worker's resident set small (the script says why). The cache mount keeps
# dependency checkouts between builds; the product is copied out of it in the same step because cache
# mounts are not part of the layer.
RUN --mount=type=cache,target=/src/.build-image \
    mkdir -p /out \
    && strip -o /out/swarm-worker "$(builder/build-worker.sh --scratch-path .build-image | tail -n 1)"

# The runtime image has glibc, the GCC runtime and zlib (AsyncHTTPClient's HTTP decompression links it),
# nothing else the binary could link to: fail here, not at the first start on a GPU, if another slipped in.
RUN ldd /out/swarm-worker | tee /tmp/swarm-worker.ldd \
    && ls -l /out/swarm-worker \
    && ! grep -vE '(linux-vdso|ld-linux-x86-64|lib(c|m|dl|pthread|rt|util|resolv|stdc\+\+|gcc_s|z)\.so)' /tmp/swarm-worker.ldd

FROM ${CUDA_IMAGE} AS runtime
ARG SWARMUI_REPO=https://github.com/mcmonkeyprojects/SwarmUI
ARG SWARMUI_REF=062407c7bb488fc76ac61044cb929f0d0a30e60f
ARG SWARMUI_VERSION=0.9.8.2
ARG COMFYUI_REPO=https://github.com/comfyanonymous/ComfyUI
# swarmui-week: the last ComfyUI master commit at or before SwarmUI's commit (install-comfyui.sh); a commit id
# pins one, and must be within 7 days of SwarmUI's. The commits and dates used go to /opt/swarm/versions.txt.
ARG COMFYUI_REF=swarmui-week
ARG COMFYUI_GGUF_REPO=https://github.com/city96/ComfyUI-GGUF
ARG COMFYUI_GGUF_REF=795e45156ece99afbc3efef911e63fcb46e6a20d
ARG IMAGE_VERSION=dev
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
ARG IMAGE_SOURCE=unknown

LABEL org.opencontainers.image.title="swarm-worker" \
      org.opencontainers.image.description="swarm-worker with SwarmUI ${SWARMUI_VERSION}, ComfyUI + GGUF nodes and PyTorch for CUDA 12.8 (Wan 2.2 image-to-video)" \
      org.opencontainers.image.version="${IMAGE_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.source="${IMAGE_SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${CUDA_IMAGE}" \
      io.swarm.swarmui.ref="${SWARMUI_REF}" \
      io.swarm.comfyui.ref="${COMFYUI_REF}" \
      io.swarm.comfyui-gguf.ref="${COMFYUI_GGUF_REF}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    DOTNET_NOLOGO=1

COPY builder/install-system.sh /opt/builder/
RUN /opt/builder/install-system.sh

# The largest layer (PyTorch) comes before anything that changes often.
COPY builder/install-python.sh builder/requirements.txt /opt/builder/
RUN /opt/builder/install-python.sh /opt/venv /opt/builder/requirements.txt

COPY builder/install-swarmui.sh builder/Settings.fds builder/Backends.fds /opt/builder/
RUN /opt/builder/install-swarmui.sh /opt/swarmui-seed "${SWARMUI_REPO}" "${SWARMUI_REF}" "${SWARMUI_VERSION}" /opt/builder

COPY builder/install-comfyui.sh /opt/builder/
RUN mkdir -p /opt/swarm \
    && /opt/builder/install-comfyui.sh /opt/swarmui-seed /opt/venv /opt/builder/requirements.txt \
        "${COMFYUI_REPO}" "${COMFYUI_REF}" "${COMFYUI_GGUF_REPO}" "${COMFYUI_GGUF_REF}" /opt/swarm/pip-freeze.txt

# ComfyUI started once on CPU with SwarmUI's arguments: the build fails unless the Wan/GGUF node types register.
COPY builder/check-comfyui.sh /opt/builder/
RUN /opt/builder/check-comfyui.sh /opt/swarmui-seed

COPY builder/models.json /opt/swarm/models.json
COPY builder/presets.json /opt/swarm/presets.json
COPY scripts/onstart.sh /opt/swarm/onstart.sh
COPY builder/gpu-check.py /opt/swarm/gpu-check.py
COPY --from=build /out/swarm-worker /usr/local/bin/swarm-worker

# Defaults only; tokens and queue keys come from the platform's environment at run time. VOLUME_PATH is left to
# the worker: /runpod-volume on RunPod serverless, /workspace elsewhere (onstart.sh's default on vast.ai).
ENV SWARMUI_HOST=127.0.0.1 \
    SWARMUI_PORT=7801 \
    WORKER_HEALTH_HOST=0.0.0.0 \
    WORKER_HEALTH_PORT=18080 \
    SWARM_MODELS_FILE=/opt/swarm/models.json \
    SWARM_PRESETS_FILE=/opt/swarm/presets.json \
    SWARMUI_SEED=/opt/swarmui-seed \
    PATH=/opt/venv/bin:${PATH}
# The same defaults for onstart.sh, which vast may run without the image's ENV.
RUN env | grep -E '^(SWARMUI_HOST|SWARMUI_PORT|WORKER_HEALTH_HOST|WORKER_HEALTH_PORT|SWARM_MODELS_FILE|SWARM_PRESETS_FILE|SWARMUI_SEED)=' \
        | sort > /opt/swarm/image.env

WORKDIR /workspace
EXPOSE 18080
STOPSIGNAL SIGTERM
# Generous start period: the first boot copies the seed, downloads models and starts ComfyUI.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30m --retries=3 \
    CMD ["/bin/sh", "-c", "curl -fsS http://127.0.0.1:${WORKER_HEALTH_PORT:-18080}/health > /dev/null || exit 1"]

# tini reaps SwarmUI's and ComfyUI's orphans and forwards SIGTERM to the worker.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/usr/local/bin/swarm-worker"]
