#!/usr/bin/env bash
# Installs what a runtime image needs from a build tree into PREFIX: internimage-server,
# internimage-client (the health check) and internimage-loadgen in PREFIX/bin, stripped, and the
# libraries they load from the build tree (libiis_ops.so) in PREFIX/lib. The installed binaries
# find PREFIX/lib through their RUNPATH ($ORIGIN/../lib, set by `cmake --install`).
#
#   deploy/docker/install.sh [--copy-libs DIR] BUILD_DIR PREFIX
#
#   --copy-libs DIR  also copy DIR/*.so* (e.g. a LibTorch archive's lib/) into PREFIX/lib. The GPU
#                    image does not use it: deploy/docker/torch-libs.py copies the wheel's LibTorch
#                    and the CUDA libraries the runtime image lacks.
#
# Used by both runtime stages of the Dockerfile; tests/deploy/deploy_static_test.py runs it on the
# local build. Exit status: 0 installed, 1 something is missing, 2 bad usage.
set -euo pipefail

usage() {
  echo "usage: $0 [--copy-libs DIR] BUILD_DIR PREFIX" >&2
  exit 2
}

copy_libs=""
if [[ ${1:-} == --copy-libs ]]; then
  [[ $# -ge 2 ]] || usage
  copy_libs=$2
  shift 2
fi
[[ $# -eq 2 ]] || usage
build_dir=$1
prefix=$2

binaries=(internimage-server internimage-client internimage-loadgen)
for binary in "${binaries[@]}"; do
  if [[ ! -x $build_dir/bin/$binary ]]; then
    echo "install: $build_dir/bin/$binary is missing: build the tree first (scripts/build.sh)" >&2
    exit 1
  fi
done
ops_lib=$build_dir/lib/libiis_ops.so
if [[ ! -f $ops_lib ]]; then
  echo "install: $ops_lib is missing: build the tree first (scripts/build.sh)" >&2
  exit 1
fi

# The binaries' install rules (server/, client/) rewrite their RUNPATH to $ORIGIN/../lib.
cmake --install "$build_dir" --prefix "$prefix" --strip >/dev/null
# iis_ops has no install rule of its own: copy it next to the binaries.
mkdir -p "$prefix/lib"
install -m 0755 "$ops_lib" "$prefix/lib/libiis_ops.so"
strip --strip-unneeded "$prefix/lib/libiis_ops.so"

if [[ -n $copy_libs ]]; then
  shopt -s nullglob
  libs=("$copy_libs"/*.so*)
  if [[ ${#libs[@]} -eq 0 ]]; then
    echo "install: --copy-libs $copy_libs holds no shared libraries" >&2
    exit 1
  fi
  cp -a "${libs[@]}" "$prefix/lib/"
fi

for binary in "${binaries[@]}"; do
  if [[ ! -x $prefix/bin/$binary ]]; then
    echo "install: cmake --install did not install $prefix/bin/$binary" >&2
    exit 1
  fi
done
echo "install: ${binaries[*]} and libiis_ops.so in $prefix"
