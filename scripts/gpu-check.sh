#!/usr/bin/env bash
# The prepared check for a lent GPU machine (H100/H200, PyTorch 2.x with CUDA installed for
# python3, an nvcc of the same CUDA major version, CMake, Python; no gRPC, OpenCV, GoogleTest,
# abseil or internet). Builds the LibTorch-only part of the project (ops/ and models/,
# IIS_BUILD_SERVICE=OFF) against the machine's PyTorch with CUDA kernels for sm_90, configured as
# scripts/check-libtorch2.sh configures its build (scripts/lib/libtorch-build.sh), runs the ops
# tests (the gpu label included), runs the DCNv3 GPU benchmark, then builds and runs whatever else
# exists, and prints a summary. Designed to finish well inside 8 minutes.
#
# How to run:
#   1. Here (the development machine), once per checkout:
#        scripts/gpu-check.sh --prepare
#      stages what the device lacks into build-gpu-carry/ (an ignored path: carry it): the
#      GoogleTest sources, and for the checkpoint reader nlohmann-json's headers and CMake package
#      and zlib's headers (the device's own runtime libz.so.1 is linked).
#   2. On the device, from the repository root, with carry ["build-gpu-carry"]:
#        scripts/gpu-check.sh
#      Results are printed; logs and the summary are also written to $OUT (when set) or
#      build-gpu/logs.
#   Rehearsal, here: scripts/gpu-check.sh --local runs the same steps against the torch 2.x wheel
#   that scripts/check-libtorch2.sh installs (.cache/torch2/venv) and this machine's nvcc:
#   everything builds, the GPU tests skip and the GPU benchmark is skipped (no device).
#
# Environment overrides: GPU_CHECK_BUILD_DIR (default build-gpu), GPU_CHECK_PYTHON (the interpreter
# whose torch is built against; default python3 on the device, .cache/torch2/venv/bin/python with
# --local), GPU_CHECK_CUDA_ARCHS (default 90), GPU_CHECK_JOBS (default: nproc),
# GPU_CHECK_TIMEOUT_SCALE (multiplies every step's time limit; default 1, 10 with --local).
# Exit status: 0 when every step passed, 1 otherwise (see the summary), 2 on bad usage.
set -euo pipefail

cd "$(dirname "$0")/.."
repo_root=$(pwd)
# shellcheck source=scripts/lib/libtorch-build.sh
source scripts/lib/libtorch-build.sh
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
  section "prepare: what the device lacks, into $carry_dir"
  src=/usr/src/googletest
  for f in "$src/CMakeLists.txt" /usr/include/nlohmann/json.hpp \
           /usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake /usr/include/zlib.h \
           /usr/include/zconf.h; do
    [[ -f $f ]] || {
      echo "missing $f (scripts/setup.sh installs googletest, nlohmann-json3-dev, zlib1g-dev)" >&2
      exit 1
    }
  done
  rm -rf "$carry_dir"
  mkdir -p "$carry_dir/include" "$carry_dir/share/cmake"
  cp -r "$src" "$gtest_dir"
  # The rest is a CMake prefix: include/ and share/cmake/ (nlohmann_json's package, which finds
  # the headers relative to itself).
  cp -r /usr/include/nlohmann "$carry_dir/include/"
  cp -r /usr/share/cmake/nlohmann_json "$carry_dir/share/cmake/"
  cp /usr/include/zlib.h /usr/include/zconf.h "$carry_dir/include/"
  git check-ignore -q "$carry_dir" || echo "warning: $carry_dir is not ignored by git" >&2
  echo "staged GoogleTest sources, nlohmann-json and zlib headers" \
       "($(du -sh "$carry_dir" | cut -f1)); carry: build-gpu-carry"
  exit 0
fi

build_dir="${GPU_CHECK_BUILD_DIR:-$repo_root/build-gpu}"
# Step time limits are sized for the 16-core device; --local on a small machine scales them.
scale="${GPU_CHECK_TIMEOUT_SCALE:-1}"
[[ $mode == local && -z ${GPU_CHECK_TIMEOUT_SCALE:-} ]] && scale=10
limit() { echo $(($1 * scale)); }
jobs="${GPU_CHECK_JOBS:-$(nproc)}"
archs="${GPU_CHECK_CUDA_ARCHS:-90}"
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
for f in "$gtest_dir/CMakeLists.txt" "$carry_dir/include/nlohmann/json.hpp" \
         "$carry_dir/include/zlib.h"; do
  [[ -f $f ]] || {
    echo "missing $f: run scripts/gpu-check.sh --prepare here and carry build-gpu-carry" >&2
    exit 1
  }
done
if [[ $mode == device ]]; then
  timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  python="${GPU_CHECK_PYTHON:-python3}"
else
  python="${GPU_CHECK_PYTHON:-$repo_root/.cache/torch2/venv/bin/python}"
  [[ -x $python ]] || {
    echo "missing $python: run scripts/check-libtorch2.sh first (it makes .cache/torch2/venv)" \
         "or set GPU_CHECK_PYTHON" >&2
    exit 1
  }
fi
cmake --version | head -n 1
iis_torch_probe "$python" || exit 1
"$python" -W ignore -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())'
nvcc=$(iis_find_nvcc) || { echo "no nvcc found (set CUDACXX)" >&2; exit 1; }
echo "nvcc $(iis_nvcc_version "$nvcc") at $nvcc; CUDA architectures $archs"
iis_require_nvcc_for_torch "$nvcc" "$PT_CUDA" || exit 1

section "carried dependencies"
# This machine's runtime libz.so.1 (it may lack the libz.so development link) with the carried
# headers: a prefix whose lib/libz.so points at it, searched after the carry.
deps_dir="$build_dir/deps"
# (awk reads to the end: an early exit would kill ldconfig with SIGPIPE, and pipefail the script.)
libz=$(ldconfig -p 2>/dev/null | awk '/libz\.so\.1 .*x86-64/ && !found { print $NF; found = 1 }')
if [[ -z $libz ]]; then
  for f in /lib/x86_64-linux-gnu/libz.so.1 /usr/lib64/libz.so.1 /usr/lib/libz.so.1; do
    [[ -e $f ]] && { libz=$f; break; }
  done
fi
[[ -n $libz ]] || { echo "no libz.so.1 on this machine" >&2; exit 1; }
mkdir -p "$deps_dir/lib"
ln -sfn "$libz" "$deps_dir/lib/libz.so"
prefixes="$carry_dir;$deps_dir"
# Prove that the carried packages work as the project uses them (find_package, compile, link,
# run) before the build depends on them: a throwaway project in build-gpu/deps-probe.
probe_dir="$build_dir/deps-probe"
mkdir -p "$probe_dir/src"
printf '%s\n' \
  'cmake_minimum_required(VERSION 3.22)' \
  'project(iis_deps_probe CXX)' \
  'find_package(nlohmann_json 3 CONFIG REQUIRED)' \
  'find_package(ZLIB REQUIRED)' \
  'add_executable(probe probe.cc)' \
  'target_link_libraries(probe PRIVATE nlohmann_json::nlohmann_json ZLIB::ZLIB)' \
  >"$probe_dir/src/CMakeLists.txt"
printf '%s\n' \
  '#include <zlib.h>' \
  '#include <cstdio>' \
  '#include <nlohmann/json.hpp>' \
  'int main() {' \
  '  const std::string s =' \
  '      nlohmann::json::parse(R"({"data": "123456789"})").at("data").get<std::string>();' \
  '  const unsigned long crc = crc32(0, reinterpret_cast<const Bytef*>(s.data()), s.size());' \
  '  std::printf("nlohmann-json %d.%d.%d, zlib %s (headers %s): crc32 %08lx\n",' \
  '              NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,' \
  '              NLOHMANN_JSON_VERSION_PATCH, zlibVersion(), ZLIB_VERSION, crc);' \
  '  return crc == 0xCBF43926UL ? 0 : 1;' \
  '}' >"$probe_dir/src/probe.cc"
rm -rf "$probe_dir/build"
if timeout "$(limit 60)" cmake -S "$probe_dir/src" -B "$probe_dir/build" \
     -DCMAKE_PREFIX_PATH="$prefixes" >"$log_dir/deps-probe.log" 2>&1 &&
   timeout "$(limit 60)" cmake --build "$probe_dir/build" >>"$log_dir/deps-probe.log" 2>&1 &&
   "$probe_dir/build/probe" | tee -a "$log_dir/deps-probe.log" &&
   grep -q "ZLIB: $deps_dir/lib/libz.so" "$log_dir/deps-probe.log"; then
  record PASS "carried nlohmann-json and zlib headers, this machine's $libz"
else
  tail -n 30 "$log_dir/deps-probe.log"
  record FAIL "carried dependencies (log: $log_dir/deps-probe.log)"
  finish
fi

section "configure"
configure_args=()
iis_libtorch_configure_args configure_args "$python" "$build_dir" "$nvcc" "$archs" "$prefixes"
configure_args+=(-DIIS_BUILD_SERVICE=OFF -DIIS_BUILD_BENCHMARKS=OFF -DIIS_BUILD_TESTS=ON
                 -DIIS_GTEST_SOURCE_DIR="$gtest_dir"
                 -DIIS_CHECKPOINT_TEST_PYTHON="$(command -v "$python")")
if timeout "$(limit 120)" cmake "${configure_args[@]}" >"$log_dir/configure.log" 2>&1; then
  grep -E "internimage-serving: (LibTorch|CUDA)" "$log_dir/configure.log" || true
  if iis_require_clean_log "$log_dir/configure.log" "configure"; then
    record PASS "configure (torch $PT_VERSION, nvcc $(iis_nvcc_version "$nvcc"), sm $archs)"
  else
    record FAIL "configure printed warnings (log: $log_dir/configure.log)"
  fi
else
  tail -n 40 "$log_dir/configure.log"
  record FAIL "configure (log: $log_dir/configure.log)"
  finish
fi
if ! grep -q "LibTorch CUDA ON" "$log_dir/configure.log"; then
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
gpu_count=$("$python" -W ignore -c 'import torch; print(torch.cuda.device_count())' || echo 0)
if [[ -x $build_dir/bin/dcnv3_gpu_bench && $gpu_count == 0 ]]; then
  if [[ $mode == device ]]; then
    record FAIL "dcnv3_gpu_bench not run: torch sees no CUDA device"
  else
    record SKIP "dcnv3_gpu_bench (built; no CUDA device here)"
  fi
elif [[ -x $build_dir/bin/dcnv3_gpu_bench ]]; then
  if timeout "$(limit 150)" "$build_dir/bin/dcnv3_gpu_bench" 64 20 2>&1 | tee "$log_dir/dcnv3_gpu_bench.log"; then
    record PASS "dcnv3_gpu_bench: $(grep -E 'fp16 target' "$log_dir/dcnv3_gpu_bench.log" || echo 'ran')"
  else
    record FAIL "dcnv3_gpu_bench (log: $log_dir/dcnv3_gpu_bench.log)"
  fi
elif [[ $mode == device ]]; then
  record FAIL "dcnv3_gpu_bench was not built"
else
  record SKIP "dcnv3_gpu_bench (not built: no CUDA LibTorch here)"
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
