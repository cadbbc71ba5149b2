#!/usr/bin/env bash
# Builds and tests the whole project (server, client, tests, benchmarks, CUDA kernels and their
# LibTorch bindings, the GPU benchmark and the CUDA tests) against LibTorch 2.x with CUDA: the
# pinned PyTorch wheel (the GPU image's) in a virtual environment, this machine's nvcc, then the
# whole CPU test suite (ctest; the CUDA tests skip without a device). CI runs it after the README's
# test command (which covers Debian's LibTorch 1.13).
#
#   scripts/check-libtorch2.sh            the pinned torch
#   scripts/check-libtorch2.sh --newest   the pinned torch, then the newest torch on PyPI (not in CI)
#
# The pin is deploy/docker/torch-requirements.txt, the GPU image's (its torch==X requirement; see
# torch_pin): with Python 3.12 (the image's) the venv installs that file as the image does (every
# package at its version and wheel sha256); with another Python, torch==X only.
# Fails (exit 1) when: torch cannot be installed; nvcc is missing or its major version is not
# torch's CUDA major version; configure or build fails or prints a warning (CMake's or the
# compilers'); a binary loads a LibTorch or OpenMP library from outside the wheel; an object was
# compiled against the system's LibTorch headers; LibTorch has no CUDA or the CUDA targets were not
# built; a test fails. Prints the torch and CUDA versions and the time of every step.
#
# Where: the build tree is build-torch2/ (build-torch2-newest/), beside build/ at the same depth
# so that ccache serves its LibTorch-free objects from the README build's; logs go to its
# check-logs/. The venvs are .cache/torch2/venv and .cache/torch2/venv-newest. All git-ignored.
# Environment: IIS_TORCH2_BUILD_DIR (default build-torch2), IIS_TORCH2_VENV_DIR (default
# .cache/torch2), IIS_TORCH2_PYTHON (interpreter for the venv; default a python3.12 that runs, on
# PATH or a pyenv version: the GPU image's; else python3), CUDACXX (nvcc; default nvcc on PATH,
# else /usr/local/cuda/bin/nvcc), IIS_TORCH2_CUDA_ARCHS (default "80;90"), IIS_TORCH2_JOBS
# (default nproc).
# Exit status: 0 when everything passed, 1 otherwise, 2 on bad usage.
set -euo pipefail

# numpy lets the checkpoint tests have this torch write their fixtures (torch.save of 2.x); 1.x,
# whose pickles name numpy.core like those of the official checkpoints (2.x writes numpy._core).
NUMPY_PIN=1.26.4

cd "$(dirname "$0")/.."
repo_root=$(pwd)
# shellcheck source=scripts/lib/libtorch-build.sh
source scripts/lib/libtorch-build.sh

newest=0
case "${1:-}" in
  --newest) newest=1 ;;
  "") ;;
  *) echo "usage: $0 [--newest]" >&2; exit 2 ;;
esac

build_root=$(realpath -m "${IIS_TORCH2_BUILD_DIR:-$repo_root/build-torch2}")
venv_root=$(realpath -m "${IIS_TORCH2_VENV_DIR:-$repo_root/.cache/torch2}")
jobs="${IIS_TORCH2_JOBS:-$(nproc)}"
archs="${IIS_TORCH2_CUDA_ARCHS:-80;90}"
requirements="$repo_root/deploy/docker/torch-requirements.txt"
# The GPU image's Python (3.12) when one runs here (on PATH, or a pyenv version), else python3.
base_python=${IIS_TORCH2_PYTHON:-}
if [[ -z $base_python ]]; then
  for candidate in python3.12 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 python3; do
    if "$candidate" -c '' 2>/dev/null; then
      base_python=$candidate
      break
    fi
  done
fi

timings=()
step() {  # step <name>: prints a header; the previous step's time goes into the summary
  printf '\n==== %s [%ss] ====\n' "$1" "$SECONDS"
}
timed() {  # timed <what> <command...>: runs the command, records its wall time
  local what=$1 start=$SECONDS
  shift
  "$@"
  local status=$?
  timings+=("$(printf '%5ss  %s' $((SECONDS - start)) "$what")")
  return "$status"
}
fail() {
  echo "FAILED: $*" >&2
  print_timings
  exit 1
}
print_timings() {
  printf '\n==== timings ====\n'
  printf '%s\n' "${timings[@]}"
  echo "total ${SECONDS}s"
}

# torch_pin <requirements file>: prints X of its torch==X requirement (pip's format: lines ending
# in a backslash are joined with the next, comments dropped, then the first line matching
# ^torch\s*==). Fails when there is none.
torch_pin() {
  local line
  # (grep reads to the end: stopping at the first match could kill sed with SIGPIPE.)
  line=$(sed -e ':join' -e '/\\$/{N;s/\\\n//;b join' -e '}' "$1" |
         sed -E 's/(^|[[:space:]])#.*$//' | grep -E '^torch[[:space:]]*==') || return 1
  line=${line%%$'\n'*}
  sed -E 's/^torch[[:space:]]*==[[:space:]]*([^[:space:];]+).*$/\1/' <<<"$line"
}

# install_torch <venv> <how>: a venv with torch and numpy. <how>: "locked" installs
# $requirements as the GPU image does (every package at its pinned version and wheel hash: the
# file is for CPython 3.12), "torch==X" that version with whatever it pulls in, "torch" the newest.
install_torch() {
  local venv=$1 how=$2 want
  want=$("$base_python" -c 'import sys; print(sys.version)')
  if [[ -x $venv/bin/python && $("$venv/bin/python" -c 'import sys; print(sys.version)') != "$want" ]]; then
    rm -rf "$venv"  # made by another interpreter
  fi
  [[ -x $venv/bin/python ]] || "$base_python" -m venv "$venv"
  local pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
  case $how in
    locked) "${pip[@]}" install --require-hashes --only-binary=:all: -r "$requirements" || return 1 ;;
    torch) "${pip[@]}" install --upgrade torch || return 1 ;;
    *) "${pip[@]}" install "$how" || return 1 ;;
  esac
  "${pip[@]}" install "numpy==$NUMPY_PIN"
}

# check_one <label> <venv> <build dir>: configure, build, verify and test against that venv's torch.
check_one() {
  local label=$1 venv=$2 build_dir=$3 python=$2/bin/python log_dir=$3/check-logs
  mkdir -p "$log_dir"
  step "$label: torch and CUDA"
  iis_torch_probe "$python" || fail "$label: torch does not import"
  local nvcc
  nvcc=$(iis_find_nvcc) || fail "$label: no nvcc (set CUDACXX, or install the CUDA $PT_CUDA toolkit)"
  echo "torch $PT_VERSION (CUDA ${PT_CUDA:-none}, C++11 ABI $PT_CXX11_ABI) in $PT_DIR"
  echo "nvcc $(iis_nvcc_version "$nvcc") at $nvcc; CUDA architectures $archs"
  iis_require_nvcc_for_torch "$nvcc" "$PT_CUDA" || fail "$label: nvcc does not match torch"

  step "$label: configure"
  local args
  iis_libtorch_configure_args args "$python" "$build_dir" "$nvcc" "$archs"
  args+=(-DIIS_BUILD_SERVICE=ON -DIIS_BUILD_TESTS=ON -DIIS_BUILD_BENCHMARKS=ON
         -DIIS_CHECKPOINT_TEST_PYTHON="$python")
  timed "$label: configure" cmake "${args[@]}" >"$log_dir/configure.log" 2>&1 ||
    { tail -n 40 "$log_dir/configure.log"; fail "$label: configure (log: $log_dir/configure.log)"; }
  grep -E "internimage-serving: (LibTorch|CUDA)" "$log_dir/configure.log" || true
  iis_require_clean_log "$log_dir/configure.log" "$label: configure" || fail "$label: configure warnings"
  grep -q "LibTorch CUDA ON" "$log_dir/configure.log" ||
    fail "$label: LibTorch was found without CUDA"

  step "$label: build (-j$jobs)"
  timed "$label: build" nice -n 10 cmake --build "$build_dir" -j "$jobs" >"$log_dir/build.log" 2>&1 ||
    { grep -E "error|FAILED" "$log_dir/build.log" | head -n 40; fail "$label: build (log: $log_dir/build.log)"; }
  tail -n 1 "$log_dir/build.log"
  iis_require_clean_log "$log_dir/build.log" "$label: build" || fail "$label: build warnings"

  step "$label: what was built and what it loads"
  local cuda_targets=("$build_dir/bin/dcnv3_gpu_bench" "$build_dir/tests/ops_dcnv3_cuda_test"
                      "$build_dir/tests/ops_roi_align_nms_cuda_test")
  for f in "${cuda_targets[@]}"; do [[ -x $f ]] || fail "$label: $f was not built"; done
  nm -DC "$build_dir/lib/libiis_ops.so" >"$log_dir/libiis_ops.symbols"
  grep -q "LaunchDcnv3" "$log_dir/libiis_ops.symbols" ||
    fail "$label: libiis_ops.so has no CUDA bindings (LaunchDcnv3 is not linked in)"
  iis_require_torch_links "$PT_DIR/lib" "$build_dir/lib/libiis_ops.so" \
    "$build_dir/bin/internimage-server" "$build_dir/bin/internimage-predict" "${cuda_targets[@]}" ||
    fail "$label: wrong libraries loaded"
  iis_require_torch_headers "$build_dir" || fail "$label: system LibTorch headers used"
  echo "LibTorch, c10 and libgomp load from $PT_DIR/lib; no system LibTorch header was used"

  step "$label: tests (ctest -j$jobs)"
  # deploy_static_test checks the CPU image's install tree and packages, which take LibTorch from
  # Debian (its InstallTest expects the system's libtorch): it belongs to the README's test run.
  echo "excluded: deploy_static_test (Debian's LibTorch by design; run by the README's test command)"
  timed "$label: ctest" ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" \
    -E '^deploy_static_test$' >"$log_dir/ctest.log" 2>&1 ||
    { grep -E "Failed|\*\*\*|tests passed" "$log_dir/ctest.log" | tail -n 40
      fail "$label: tests (log: $log_dir/ctest.log)"; }
  grep -E "tests passed|Total Test time" "$log_dir/ctest.log"
  sed -n '/The following tests did not run/,/^$/p' "$log_dir/ctest.log"
}

step "pinned torch"
[[ -f $requirements ]] || fail "$requirements does not exist (it holds the pin)"
version=$(torch_pin "$requirements") || fail "no torch==X requirement in $requirements"
py_version=$("$base_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ $py_version == 3.12 ]]; then
  how=locked
  echo "torch==$version: $requirements, every wheel's sha256 checked (as the GPU image)"
else
  how="torch==$version"
  echo "torch==$version from $requirements; its hashes are for CPython 3.12 wheels, this is" \
       "Python $py_version: installed by version only"
fi
timed "pinned: venv + pip install" install_torch "$venv_root/venv" "$how" ||
  fail "pip install torch==$version"
check_one pinned "$venv_root/venv" "$build_root"

if [[ $newest == 1 ]]; then
  step "newest torch"
  timed "newest: venv + pip install" install_torch "$venv_root/venv-newest" torch ||
    fail "pip install torch (newest)"
  check_one newest "$venv_root/venv-newest" "$build_root-newest"
fi

print_timings
echo "PASS"
