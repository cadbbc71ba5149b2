#!/usr/bin/env bash
# The prepared check for a lent GPU machine (H100, PyTorch 2.x with CUDA, nvcc, CMake; no gRPC,
# OpenCV, GoogleTest, abseil or internet). Builds the LibTorch-only part of the project (ops/ and
# models/) against the machine's PyTorch with CUDA kernels for sm_90, runs the ops tests (the gpu
# label included), runs the DCNv3 GPU benchmark, then builds and runs whatever else exists, and
# prints a summary. Designed to finish well inside 8 minutes.
#
# How to run:
#   1. Here (the development machine), once per checkout:
#        scripts/gpu-check.sh --prepare
#      copies the GoogleTest sources to build-gpu-carry/googletest (an ignored path: carry it).
#   2. On the device, from the repository root, with carry ["build-gpu-carry"]:
#        scripts/gpu-check.sh
#      Results are printed; logs and the summary are also written to $OUT (when set) or
#      build-gpu/logs.
#   Optional, here: scripts/gpu-check.sh --local runs the same configure/build/test path against
#   the local CPU-only LibTorch (the CUDA parts are then not built), to catch script or CMake
#   mistakes before spending device time.
#
# Environment overrides: GPU_CHECK_BUILD_DIR (default build-gpu), GPU_CHECK_TORCH_PREFIX (default:
# torch.utils.cmake_prefix_path of python3), GPU_CHECK_JOBS (default: nproc),
# GPU_CHECK_TIMEOUT_SCALE (multiplies every step's time limit; default 1, 6 with --local).
# Exit status: 0 when every step passed, 1 otherwise (see the summary), 2 on bad usage.
set -euo pipefail

cd "$(dirname "$0")/.."
repo_root=$(pwd)
carry_dir="$repo_root/build-gpu-carry"
gtest_dir="$carry_dir/googletest"
mode=device
case "${1:-}" in
  --prepare) mode=prepare ;;
  --local) mode=local ;;
  "") ;;
  *) echo "usage: $0 [--prepare | --local]" >&2; exit 2 ;;
esac

section() { printf '\n==== %s [%ss] ====\n' "$1" "$SECONDS"; }

if [[ $mode == prepare ]]; then
  section "prepare: GoogleTest sources for the device"
  src=/usr/src/googletest
  [[ -f $src/CMakeLists.txt ]] || { echo "no GoogleTest sources at $src (apt install googletest)" >&2; exit 1; }
  rm -rf "$gtest_dir"
  mkdir -p "$carry_dir"
  cp -r "$src" "$gtest_dir"
  git check-ignore -q "$carry_dir" || echo "warning: $carry_dir is not ignored by git" >&2
  echo "copied $src to $gtest_dir ($(du -sh "$gtest_dir" | cut -f1)); carry: build-gpu-carry"
  exit 0
fi

build_dir="${GPU_CHECK_BUILD_DIR:-$repo_root/build-gpu}"
# Step time limits are sized for the 16-core device; --local on a small machine scales them.
scale="${GPU_CHECK_TIMEOUT_SCALE:-1}"
[[ $mode == local && -z ${GPU_CHECK_TIMEOUT_SCALE:-} ]] && scale=6
limit() { echo $(($1 * scale)); }
jobs="${GPU_CHECK_JOBS:-$(nproc)}"
log_dir="${OUT:-$build_dir/logs}"
mkdir -p "$build_dir" "$log_dir"
summary=()
failed=0
record() {  # record <status> <what>
  summary+=("$(printf '%-5s %s' "$1" "$2")")
  [[ $1 == FAIL ]] && failed=1
  return 0
}
gtest_result() {  # gtest_result <log>: "N passed[, M skipped]"
  local passed skipped
  passed=$(grep -oE '^\[  PASSED  \] [0-9]+' "$1" | grep -oE '[0-9]+$' || echo 0)
  skipped=$(grep -oE '^\[  SKIPPED \] [0-9]+' "$1" | grep -oE '[0-9]+$' || echo 0)
  printf '%s passed' "$passed"
  [[ $skipped == 0 ]] || printf ', %s SKIPPED' "$skipped"
}
finish() {
  section "summary"
  printf '%s\n' "${summary[@]}" | tee "$log_dir/summary.txt"
  echo "total ${SECONDS}s; logs in $log_dir"
  exit "$failed"
}

section "environment"
[[ -f $gtest_dir/CMakeLists.txt ]] || {
  echo "missing $gtest_dir: run scripts/gpu-check.sh --prepare here and carry build-gpu-carry" >&2
  exit 1
}
if [[ $mode == device ]]; then
  timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
fi
command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] || echo "warning: nvcc not found"
cmake --version | head -n 1
abi_flag=""
if [[ -n ${GPU_CHECK_TORCH_PREFIX:-} || $mode == local ]]; then
  torch_prefix=${GPU_CHECK_TORCH_PREFIX:-}  # Local: the system LibTorch CMake finds by itself.
else
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  # GoogleTest is compiled here without LibTorch's flags: give it LibTorch's C++ ABI.
  abi_flag="-D_GLIBCXX_USE_CXX11_ABI=$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
fi
echo "LibTorch CMake prefix: $torch_prefix"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

section "configure"
# Newer CUDA toolkits dropped nvToolsExt, which some PyTorch 2.x CMake configs still name: give
# them an empty stand-in when the toolkit lacks it (runs right after project()).
cat >"$build_dir/gpu_check_project_include.cmake" <<'EOF'
find_package(CUDAToolkit QUIET)
if(CUDAToolkit_FOUND AND NOT TARGET CUDA::nvToolsExt)
  add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
endif()
EOF
configure_args=(
  -S "$repo_root" -B "$build_dir" "${generator[@]}"
  -DCMAKE_BUILD_TYPE=Release
  -DIIS_BUILD_SERVICE=OFF -DIIS_BUILD_BENCHMARKS=OFF -DIIS_BUILD_TESTS=ON
  -DIIS_GTEST_SOURCE_DIR="$gtest_dir"
  -DCMAKE_PREFIX_PATH="$torch_prefix"
  -DCMAKE_PROJECT_internimage_serving_INCLUDE="$build_dir/gpu_check_project_include.cmake"
)
[[ -n $abi_flag ]] && configure_args+=(-DCMAKE_CXX_FLAGS="$abi_flag")
[[ $mode == device ]] && configure_args+=(-DIIS_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90)
if timeout "$(limit 120)" cmake "${configure_args[@]}" >"$log_dir/configure.log" 2>&1; then
  grep -E "internimage-serving: CUDA" "$log_dir/configure.log" || true
  record PASS "configure"
else
  tail -n 40 "$log_dir/configure.log"
  record FAIL "configure (log: $log_dir/configure.log)"
  finish
fi
if [[ $mode == device ]] && ! grep -q "LibTorch CUDA ON" "$log_dir/configure.log"; then
  record FAIL "LibTorch was found without CUDA: the CUDA kernels are not registered"
fi

section "build ops"
# The ops library, every ops test and the GPU bench (whichever of them this configuration has).
ops_targets=$(cmake --build "$build_dir" --target help 2>/dev/null |
  sed -E 's/^\.\.\. //; s/:.*$//' |
  grep -xE 'iis_ops|iis_ops_cuda|ops_[a-z0-9_]+_test|dcnv3_gpu_bench' | sort -u | tr '\n' ' ')
echo "targets: $ops_targets"
# shellcheck disable=SC2086  # word splitting of the target list is intended
if timeout "$(limit 300)" cmake --build "$build_dir" -j "$jobs" --target $ops_targets >"$log_dir/build-ops.log" 2>&1; then
  record PASS "build ops ($ops_targets)"
else
  { grep -E "error|Error" "$log_dir/build-ops.log" || true; } | head -n 30
  tail -n 20 "$log_dir/build-ops.log"
  record FAIL "build ops (log: $log_dir/build-ops.log)"
  finish
fi

section "ops tests"
# What iis_add_test gives every test under CTest.
export IIS_SOURCE_DIR="$repo_root" IIS_BINARY_DIR="$build_dir"
shopt -s nullglob
ops_tests=("$build_dir"/tests/ops_*)
[[ ${#ops_tests[@]} -gt 0 ]] || record FAIL "no ops test binaries in $build_dir/tests"
for test in "${ops_tests[@]}"; do
  name=$(basename "$test")
  if timeout "$(limit 150)" "$test" --gtest_color=no >"$log_dir/$name.log" 2>&1; then
    record PASS "$name: $(gtest_result "$log_dir/$name.log")"
  else
    { grep -E '^\[  FAILED  \]|Failure|rror' "$log_dir/$name.log" || true; } | head -n 30
    record FAIL "$name (log: $log_dir/$name.log)"
  fi
done

section "DCNv3 GPU bench"
if [[ -x $build_dir/bin/dcnv3_gpu_bench ]]; then
  if timeout "$(limit 150)" "$build_dir/bin/dcnv3_gpu_bench" 64 20 2>&1 | tee "$log_dir/dcnv3_gpu_bench.log"; then
    record PASS "dcnv3_gpu_bench: $(grep -E 'fp16 target' "$log_dir/dcnv3_gpu_bench.log" || echo 'ran')"
  else
    record FAIL "dcnv3_gpu_bench (log: $log_dir/dcnv3_gpu_bench.log)"
  fi
elif [[ $mode == device ]]; then
  record FAIL "dcnv3_gpu_bench was not built"
else
  record SKIP "dcnv3_gpu_bench (no CUDA LibTorch here)"
fi

section "build and test the rest"
# Everything else this configuration has (models/ and later additions), reported separately so a
# problem there does not hide the ops results; skipped when the device budget is mostly spent.
if (( SECONDS > $(limit 330) )); then
  record SKIP "build and test the rest (${SECONDS}s elapsed: keeping the run inside 8 minutes)"
  finish
fi
if timeout "$(limit 180)" cmake --build "$build_dir" -j "$jobs" >"$log_dir/build-all.log" 2>&1; then
  record PASS "build all targets"
  for test in "$build_dir"/tests/*; do
    name=$(basename "$test")
    [[ -x $test && -f $test && $name != ops_* ]] || continue
    if timeout "$(limit 120)" "$test" --gtest_color=no >"$log_dir/$name.log" 2>&1; then
      record PASS "$name: $(gtest_result "$log_dir/$name.log")"
    else
      { grep -E '^\[  FAILED  \]' "$log_dir/$name.log" || true; } | head -n 20
      record FAIL "$name (log: $log_dir/$name.log)"
    fi
  done
else
  { grep -E "error|Error" "$log_dir/build-all.log" || true; } | tail -n 30
  record FAIL "build all targets (log: $log_dir/build-all.log)"
fi

finish
