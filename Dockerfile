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
# image, one pinned LibTorch archive whose sha256 is checked below. Nothing is fetched at run time.

# Base images, pinned by tag. Ubuntu 24.04 has the gRPC 1.51 / protobuf 3.21 / abseil 20220623 /
# OpenCV 4.6 generation that Debian 12 has, so one code base builds on both.
ARG CUDA_DEVEL_IMAGE=nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG DEBIAN_IMAGE=debian:12.11-slim

# ---------------------------------------------------------------------------------------------
# CPU build: Debian 12's LibTorch 1.13, installed by the same scripts/setup.sh as the README.
FROM ${DEBIAN_IMAGE} AS cpu-build
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN IIS_BUILD_DIR=/build scripts/build.sh -DIIS_CUDA=OFF -DIIS_BUILD_TESTS=OFF \
        -DIIS_BUILD_BENCHMARKS=OFF \
    && deploy/docker/install.sh /build /opt/internimage

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
# GPU build: CUDA 12.8 toolkit and cuDNN from the base image, Ubuntu's gRPC stack, and LibTorch.
FROM ${CUDA_DEVEL_IMAGE} AS gpu-build
ARG DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake ninja-build pkg-config ca-certificates curl unzip binutils \
        libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
        libopencv-dev prometheus-cpp-dev libabsl-dev \
    && rm -rf /var/lib/apt/lists/*
# LibTorch 2.7.1 built for CUDA 12.8 with the C++11 ABI (the ABI of Ubuntu's C++ libraries), the
# shared build that bundles its CUDA dependencies. The sha256 is that of this exact archive: a
# different file, or a changed URL without a new sum, fails the build.
ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/cu128/libtorch-cxx11-abi-shared-with-deps-2.7.1%2Bcu128.zip
ARG LIBTORCH_SHA256=ae513b437ae99150744ef1d06b02a4ecbbb9275c9ffe540c88909623e3293041
RUN curl -fsSL --retry 3 -o /tmp/libtorch.zip "${LIBTORCH_URL}" \
    && echo "${LIBTORCH_SHA256}  /tmp/libtorch.zip" | sha256sum -c - \
    && unzip -q /tmp/libtorch.zip -d /opt \
    && rm /tmp/libtorch.zip
# LibTorch's CMake package compiles for these GPUs too (A100 = 8.0, H100 = 9.0).
ENV TORCH_CUDA_ARCH_LIST="8.0 9.0"
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_PREFIX_PATH=/opt/libtorch \
        -DIIS_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="80;90" \
        -DIIS_BUILD_TESTS=OFF -DIIS_BUILD_BENCHMARKS=OFF \
        -DCMAKE_PROJECT_internimage_serving_INCLUDE=/src/deploy/docker/cuda_compat.cmake \
        | tee /tmp/configure.log \
    && grep -q "LibTorch CUDA ON" /tmp/configure.log \
    && cmake --build /build \
    && deploy/docker/install.sh --copy-libs /opt/libtorch/lib /build /opt/internimage \
    && deploy/docker/runtime-packages.sh --skip /opt/internimage/lib --skip /opt/libtorch/lib \
        /opt/internimage/bin/internimage-server /opt/internimage/bin/internimage-client \
        /opt/internimage/bin/internimage-loadgen /opt/internimage/lib/libiis_ops.so \
        > /tmp/runtime-packages.txt

# ---------------------------------------------------------------------------------------------
# GPU runtime (the default target): the CUDA/cuDNN runtime, the Ubuntu packages the binaries need
# (found by runtime-packages.sh in the build stage) and LibTorch's libraries next to the binaries.
FROM ${CUDA_RUNTIME_IMAGE} AS gpu
ARG DEBIAN_FRONTEND=noninteractive
COPY --from=gpu-build /tmp/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
    && xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
COPY --from=gpu-build /opt/internimage /opt/internimage
# libiis_ops.so and LibTorch's libraries find each other through the loader cache.
RUN echo /opt/internimage/lib > /etc/ld.so.conf.d/internimage.conf && ldconfig
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
