#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing and running internimage-serving needs.
# Idempotent: packages already present are skipped, and nothing runs when all are installed.
# Run as root (or with sudo available). Used by the README, .ci/run and the CPU Docker image.
#
#   scripts/setup.sh            build + runtime + test dependencies (the default)
#   scripts/setup.sh --build    only what building needs (the CPU image's build stage)
#   scripts/setup.sh --runtime  only what the server binaries need at run time (Docker runtime stage)
set -euo pipefail

build_packages=(
  build-essential cmake ninja-build ccache pkg-config git ca-certificates
  libtorch-dev libopenblas0-openmp libdnnl-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libopencv-dev prometheus-cpp-dev libabsl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev zlib1g-dev
)
# Test-only: the official InternImage code runs under Debian's PyTorch to produce parity fixtures,
# real photographs come from scikit-image, the deployment tests start a real Prometheus, CI's
# checks format and lint with clang-format and clang-tidy, and the LibTorch 2.x check makes a venv.
test_packages=(
  python3 python3-torch python3-torchvision python3-numpy python3-skimage python3-pil python3-opencv
  python3-venv prometheus curl clang-format clang-tidy
)
runtime_packages=(
  libtorch1.13 libopenblas0-openmp libdnnl2 libgrpc++1.51 libprotobuf32
  libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406
  libprometheus-cpp-core1.0 ca-certificates
)

case "${1:-}" in
  --runtime) wanted=("${runtime_packages[@]}") ;;
  --build) wanted=("${build_packages[@]}") ;;
  "") wanted=("${build_packages[@]}" "${test_packages[@]}") ;;
  *) echo "usage: $0 [--build | --runtime]" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#wanted[@]} packages are installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root (missing: ${missing[*]})" >&2; exit 1; }
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
