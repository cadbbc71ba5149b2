# syntax=docker/dockerfile:1
#
# Container images of internimage-serving (README.md, "## Deployment").
#
#   docker build -t internimage-serving:gpu .                # CUDA image (the default target)
#   docker build --target cpu -t internimage-serving:cpu .   # Debian 12, CPU only
#
# Both runtime images hold only the server, the client (for the health check), the load generator
# and the libraries they load. They run `internimage-server --config=/etc/internimage/server.pbtxt`
# as the unprivileged user 10001, serve gRPC on 50051 and Prometheus metrics on 8002, and read model
# weights from a volume mounted at /models that the configuration names. The configuration baked
# in (deploy/config/server.pbtxt) serves the default models with random weights; mount your own
# over it.
#
# Downloads happen only while building: the base images, distribution packages and, for the GPU
# image, the PyPI wheels of deploy/docker/torch-requirements.txt, each pinned to a version and a
# sha256 that pip checks (--require-hashes). Nothing is fetched at run time.
#
# What has been verified, and what has not (no GPU image can be built on the project's machines:
# the nvidia/cuda images cannot be pulled there):
#   - The CPU image (`--target cpu`) is built and run by deploy/docker/check-image.sh (buildah):
#     health, one call per task, /metrics, uid 10001, drain on SIGTERM.
#   - GPU image, checked without building it: tests/deploy/deploy_static_test.py reads this file
#     (pinned base images, the one hash-pinned pip install, no other download, CMake options);
#     torch-requirements.txt installs with `pip install --require-hashes` into a CPython 3.12
#     virtual environment (deploy/docker/pin-torch.py did so on Debian 12), giving torch
#     2.11.0+cu130 with the C++11 ABI; the cmake configure command below, run there against that
#     installation with nvcc 13.0, found the wheel's libtorch, libc10 and libc10_cuda (not Debian's
#     LibTorch 1.13 beside them) and printed "LibTorch CUDA ON" (nothing was compiled);
#     deploy/docker/torch-libs.py ran on that installation against stand-in runtime root file
#     systems; deploy/check-manifests.sh lints this file (checkov).
#   - Not verified: that the nvidia/cuda 13.0.2 tags below exist as written, the apt and CMake
#     steps of the GPU build stage on Ubuntu 24.04 with CUDA 13.0, which CUDA libraries the real
#     runtime base image already has (torch-libs.py decides that during the build and prints it),
#     and the GPU image running on a GPU.

# Base images, pinned by tag. Ubuntu 24.04 has the gRPC 1.51 / protobuf 3.21 / abseil 20220623 /
# OpenCV 4.6 generation that Debian 12 has, so one code base builds on both. CUDA 13.0 is the
# CUDA of the torch wheel (torch 2.11.0 on PyPI is built for CUDA 13.0): nvcc compiles our kernels
# with the same major version as LibTorch, and 13.0.2 is the release whose component versions the
# wheel pins (cuda-toolkit==13.0.2).
# checkov (deploy/check-manifests.sh) does not expand ARGs, so it takes FROM ${DEBIAN_IMAGE} for an
# image without a tag (CKV_DOCKER_7); every base image is pinned by tag right here, which
# tests/deploy/deploy_static_test.py checks.
# checkov:skip=CKV_DOCKER_7: the base images are pinned by tag in the ARG defaults, which checkov does not expand
ARG CUDA_DEVEL_IMAGE=nvidia/cuda:13.0.2-cudnn-devel-ubuntu24.04
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
ARG DEBIAN_IMAGE=debian:12.11-slim

# ---------------------------------------------------------------------------------------------
# CPU build: Debian 12's LibTorch 1.13, installed by the same scripts/setup.sh as the README.
FROM ${DEBIAN_IMAGE} AS cpu-build
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
# In /src/build, the depth of the README's build/: ccache (when the builder lends its cache, as
# deploy/docker/check-image.sh does) then reuses objects compiled there.
RUN scripts/build.sh -DIIS_CUDA=OFF -DIIS_BUILD_TESTS=OFF -DIIS_BUILD_BENCHMARKS=OFF \
    && deploy/docker/install.sh build /opt/internimage

# ---------------------------------------------------------------------------------------------
# CPU runtime: `docker build --target cpu .`
FROM ${DEBIAN_IMAGE} AS cpu
COPY scripts/setup.sh /tmp/setup.sh
RUN /tmp/setup.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/setup.sh
COPY --from=cpu-build /opt/internimage /opt/internimage
# ---- runtime settings (identical in both runtime stages) ----
RUN groupadd --system --gid 10001 iis \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin iis \
    && mkdir -p /models /etc/internimage
COPY deploy/config/server.pbtxt /etc/internimage/server.pbtxt
ENV PATH=/opt/internimage/bin:${PATH}
USER 10001:10001
# gRPC (with grpc.health.v1 and reflection) and the Prometheus /metrics endpoint. Weights are
# read from a volume the user mounts at /models (docker run -v, a Kubernetes volume).
EXPOSE 50051 8002
# Health follows model state: NOT_SERVING while the models load and once a drain starts.
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
    CMD ["/opt/internimage/bin/internimage-client", "health", "--target", "127.0.0.1:50051", \
         "--deadline", "4s"]
# SIGTERM starts a drain of up to --drain-grace (default 30s): stop with `docker stop -t 35`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/internimage/bin/internimage-server"]
CMD ["--config=/etc/internimage/server.pbtxt"]
# ---- end runtime settings ----

# ---------------------------------------------------------------------------------------------
# The CUDA runtime base image, as a stage of its own: the GPU build stage reads its file system
# (a read-only bind mount) to find out which CUDA libraries it already has.
FROM ${CUDA_RUNTIME_IMAGE} AS gpu-runtime-base

# ---------------------------------------------------------------------------------------------
# GPU build: CUDA 13.0 toolkit from the base image, Ubuntu's gRPC stack, and LibTorch from the
# torch wheel on PyPI.
FROM ${CUDA_DEVEL_IMAGE} AS gpu-build
ARG DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake ninja-build pkg-config ca-certificates binutils \
        python3 python3-venv \
        libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
        libopencv-dev prometheus-cpp-dev libabsl-dev \
        libcli11-dev nlohmann-json3-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
# LibTorch is the torch/ directory of the torch wheel (torch==2.11.0: CUDA 13.0, C++11 ABI, the ABI
# of Ubuntu's C++ libraries), installed with the CUDA wheels it depends on (nvidia-*) into a
# virtual environment. torch-requirements.txt pins every package to one version and to the sha256
# of its CPython 3.12 manylinux x86_64 wheel (Ubuntu 24.04's python3 is 3.12); with
# --require-hashes pip refuses any file whose hash differs and any package the file does not pin.
# scripts/check-libtorch2.sh builds the project against the same wheel in CI.
COPY deploy/docker/torch-requirements.txt /tmp/torch-requirements.txt
RUN python3 -m venv /opt/torch-venv \
    && /opt/torch-venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        --require-hashes --only-binary=:all: -r /tmp/torch-requirements.txt \
    && rm /tmp/torch-requirements.txt
# LibTorch's CMake package compiles for these GPUs too (A100 = 8.0, H100 = 9.0).
ENV TORCH_CUDA_ARCH_LIST="8.0 9.0"
WORKDIR /src
COPY . .
# CMAKE_PREFIX_PATH holds torch.utils.cmake_prefix_path (torch/share/cmake: the Torch package) and
# torch/ itself, so that find_library finds the wheel's libtorch and libc10 before any other.
# torch-libs.py then puts torch/lib's libraries and those CUDA libraries of the wheels that the
# runtime base image lacks (or has in an older version) into /opt/internimage/lib, printing where
# each one will be loaded from; runtime-packages.sh lists the Ubuntu packages for the rest.
RUN --mount=type=bind,from=gpu-runtime-base,target=/runtime-base \
    torch_dir=$(/opt/torch-venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))') \
    && torch_cmake=$(/opt/torch-venv/bin/python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)') \
    && site_packages=$(dirname "${torch_dir}") \
    && cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_PREFIX_PATH="${torch_cmake};${torch_dir}" \
        -DPython_EXECUTABLE=/opt/torch-venv/bin/python \
        -DIIS_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="80;90" \
        -DIIS_BUILD_TESTS=OFF -DIIS_BUILD_BENCHMARKS=OFF \
        | tee /tmp/configure.log \
    && grep -q "LibTorch CUDA ON" /tmp/configure.log \
    && cmake --build /build \
    && deploy/docker/install.sh /build /opt/internimage \
    && deploy/docker/torch-libs.py --site-packages "${site_packages}" --runtime-root /runtime-base \
        --prefix /opt/internimage \
    && deploy/docker/runtime-packages.sh --skip /opt/internimage/lib --skip "${site_packages}" \
        /opt/internimage/bin/internimage-server /opt/internimage/bin/internimage-client \
        /opt/internimage/bin/internimage-loadgen /opt/internimage/lib/libiis_ops.so \
        > /tmp/runtime-packages.txt

# ---------------------------------------------------------------------------------------------
# GPU runtime (the default target): the CUDA/cuDNN runtime, the Ubuntu packages the binaries need
# (found by runtime-packages.sh in the build stage) and LibTorch's libraries, with the wheels' CUDA
# libraries the base image lacks, next to the binaries.
FROM ${CUDA_RUNTIME_IMAGE} AS gpu
ARG DEBIAN_FRONTEND=noninteractive
COPY --from=gpu-build /tmp/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
    && xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
COPY --from=gpu-build /opt/internimage /opt/internimage
# libiis_ops.so and LibTorch's libraries find each other through the loader cache. The file sorts
# first among ld.so.conf.d/*.conf, so a library shipped in /opt/internimage/lib (the wheel's newer
# copy) comes before the base image's copy of the same soname; LibTorch's own libraries find
# theirs first anyway ($ORIGIN in their DT_RPATH).
RUN echo /opt/internimage/lib > /etc/ld.so.conf.d/000-internimage.conf && ldconfig
# ---- runtime settings (identical in both runtime stages) ----
RUN groupadd --system --gid 10001 iis \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin iis \
    && mkdir -p /models /etc/internimage
COPY deploy/config/server.pbtxt /etc/internimage/server.pbtxt
ENV PATH=/opt/internimage/bin:${PATH}
USER 10001:10001
# gRPC (with grpc.health.v1 and reflection) and the Prometheus /metrics endpoint. Weights are
# read from a volume the user mounts at /models (docker run -v, a Kubernetes volume).
EXPOSE 50051 8002
# Health follows model state: NOT_SERVING while the models load and once a drain starts.
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
    CMD ["/opt/internimage/bin/internimage-client", "health", "--target", "127.0.0.1:50051", \
         "--deadline", "4s"]
# SIGTERM starts a drain of up to --drain-grace (default 30s): stop with `docker stop -t 35`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/internimage/bin/internimage-server"]
CMD ["--config=/etc/internimage/server.pbtxt"]
# ---- end runtime settings ----
