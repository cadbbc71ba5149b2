#!/usr/bin/env bash
# Configures and builds everything (libraries, binaries in build/bin, tests, benchmarks) in build/.
# Extra arguments go to the CMake configure step, e.g. scripts/build.sh -DIIS_SANITIZE=address
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${IIS_BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" "$@"
cmake --build "$build_dir" -j "$(nproc)"
