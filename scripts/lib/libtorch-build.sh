# shellcheck shell=bash
# Building this project against the LibTorch of a PyTorch installation (a wheel's torch/ directory)
# with CUDA: the one configure path of scripts/check-libtorch2.sh (a venv with the pinned wheel,
# the whole project) and scripts/gpu-check.sh (a GPU machine's PyTorch, ops/ and models/ only),
# plus the checks that the build really used that LibTorch. Source it (bash); it only defines
# functions. The CMake side (Torch_ROOT, kineto, CUDA architectures, LibTorch's own libgomp) is
# iis_find_torch() in cmake/IisTorch.cmake.

# iis_torch_python <python> <expression>: prints <expression> evaluated after `import torch`
# (warnings silenced). Fails when the interpreter or torch is missing.
iis_torch_python() {
  "$1" -W ignore -c "import torch, os; print($2)"
}

# iis_torch_probe <python>: sets PT_VERSION ("2.11.0+cu130"), PT_CUDA ("13.0", empty
# for a CPU-only torch), PT_DIR (the torch/ package directory: the LibTorch prefix),
# PT_CMAKE_PREFIX (torch.utils.cmake_prefix_path) and PT_CXX11_ABI (0 or 1).
# Returns 1 with a message when torch cannot be imported.
iis_torch_probe() {
  local python=$1 out
  if ! out=$(iis_torch_python "$python" \
      'torch.__version__, torch.version.cuda or "", os.path.dirname(torch.__file__), torch.utils.cmake_prefix_path, int(torch._C._GLIBCXX_USE_CXX11_ABI), sep="\n"'); then
    echo "error: $python cannot import torch" >&2
    return 1
  fi
  { read -r PT_VERSION; read -r PT_CUDA; read -r PT_DIR
    read -r PT_CMAKE_PREFIX; read -r PT_CXX11_ABI; } <<<"$out"
}

# iis_find_nvcc: prints the CUDA compiler to use: $CUDACXX, else nvcc on PATH, else
# /usr/local/cuda/bin/nvcc. Returns 1 (printing nothing) when there is none.
iis_find_nvcc() {
  local nvcc
  for nvcc in "${CUDACXX:-}" "$(command -v nvcc 2>/dev/null || true)" /usr/local/cuda/bin/nvcc; do
    if [[ -n $nvcc && -x $nvcc ]]; then
      echo "$nvcc"
      return 0
    fi
  done
  return 1
}

# iis_nvcc_version <nvcc>: prints the release, e.g. "13.0".
iis_nvcc_version() {
  "$1" --version | sed -nE 's/.*release ([0-9]+\.[0-9]+).*/\1/p' | head -n 1
}

# iis_require_nvcc_for_torch <nvcc> <torch CUDA version>: returns 1 with a message when the major
# versions differ (kernels built by one CUDA major version cannot share a process with a
# LibTorch built by another), 0 otherwise.
iis_require_nvcc_for_torch() {
  local nvcc=$1 torch_cuda=$2 nvcc_version
  nvcc_version=$(iis_nvcc_version "$nvcc")
  if [[ -z $torch_cuda ]]; then
    echo "error: this torch has no CUDA (torch.version.cuda is None)" >&2
    return 1
  fi
  if [[ ${nvcc_version%%.*} != "${torch_cuda%%.*}" ]]; then
    echo "error: $nvcc is CUDA $nvcc_version but torch was built for CUDA $torch_cuda:" \
         "the major versions must match (set CUDACXX to a CUDA ${torch_cuda%%.*}.x nvcc)" >&2
    return 1
  fi
}

# iis_libtorch_configure_args <array> <python> <build dir> <nvcc or ""> <CUDA architectures>
#                             [<more CMake prefixes>]:
# sets the array <array> to the CMake configure arguments shared by every build against the
# LibTorch of <python>'s torch (iis_torch_probe must have run for it): Release, Ninja when present,
# the LibTorch prefix (CMAKE_PREFIX_PATH = torch.utils.cmake_prefix_path, then the ';'-separated
# <more CMake prefixes>; Torch_ROOT = torch/), the interpreter LibTorch's CUDA package runs,
# LibTorch's C++ ABI for code compiled without LibTorch's flags (a GoogleTest built from source)
# when it is the old one,
# and with <nvcc>: IIS_CUDA=ON with that compiler and architectures (e.g. "80;90"). Callers append
# their own options (what to build).
iis_libtorch_configure_args() {
  local -n _args=$1
  local python=$2 build_dir=$3 nvcc=$4 archs=$5 prefixes=$PT_CMAKE_PREFIX
  [[ -z ${6:-} ]] || prefixes+=";$6"
  local repo_root
  repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  _args=(-S "$repo_root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release
         -DCMAKE_PREFIX_PATH="$prefixes" -DTorch_ROOT="$PT_DIR"
         -DPython_EXECUTABLE="$(command -v "$python")")
  # The pre-C++11 ABI must be asked for; the C++11 one is the compilers' default, so it is not
  # spelled out: LibTorch-free objects then compile exactly as in the README's build (ccache).
  if [[ $PT_CXX11_ABI == 0 ]]; then
    _args+=(-DCMAKE_CXX_FLAGS="-D_GLIBCXX_USE_CXX11_ABI=0")
  fi
  if command -v ninja >/dev/null; then
    _args+=(-G Ninja)
  fi
  if [[ -n $nvcc ]]; then
    _args+=(-DIIS_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$archs")
  else
    _args+=(-DIIS_CUDA=OFF)
  fi
}

# iis_require_clean_log <log> <what>: returns 1, printing the offending lines, when a configure
# or build log holds a CMake warning or a compiler/linker warning.
iis_require_clean_log() {
  local log=$1 what=$2 found
  found=$(grep -nE 'CMake (Warning|Deprecation Warning|Error)|[Ww]arning[: ]|warning #' "$log" || true)
  if [[ -n $found ]]; then
    echo "error: $what printed warnings ($log):" >&2
    head -n 40 <<<"$found" >&2
    return 1
  fi
}

# iis_require_torch_links <torch lib dir> <file>...: returns 1 with a message unless every
# library the files load is found (ldd) and every LibTorch library (libtorch*, libc10*) and the
# OpenMP runtime (libgomp*) among them resolves inside <torch lib dir>.
iis_require_torch_links() {
  local torch_lib status=0 file name arrow path rest bad
  torch_lib=$(realpath "$1")
  shift
  for file in "$@"; do
    if [[ ! -e $file ]]; then
      echo "error: $file was not built" >&2
      status=1
      continue
    fi
    bad=""
    while read -r name arrow path rest; do
      [[ $arrow == "=>" ]] || continue
      if [[ $path == not ]]; then
        bad+="  $name not found"$'\n'
      elif [[ $name =~ ^lib(torch|c10|gomp) && $(realpath "$path") != "$torch_lib"/* ]]; then
        bad+="  $name => $path"$'\n'
      fi
    done < <(ldd "$file")
    if [[ -n $bad ]]; then
      printf 'error: %s loads libraries from outside %s:\n%s' "$file" "$torch_lib" "$bad" >&2
      status=1
    fi
  done
  return "$status"
}

# iis_require_torch_headers <build dir>: returns 1 with a message when an object of the (Ninja)
# build was compiled against a LibTorch header outside the LibTorch being used, i.e. one of the
# system's (/usr/include/{ATen,c10,torch,caffe2}: Debian's LibTorch 1.13). Needs Ninja's deps log.
iis_require_torch_headers() {
  local build_dir=$1 found
  if [[ ! -f $build_dir/.ninja_deps ]]; then
    echo "note: $build_dir is not a Ninja build: LibTorch header origin not checked"
    return 0
  fi
  found=$(ninja -C "$build_dir" -t deps | grep -E '^\s+/usr(/local)?/include/(ATen|c10|torch|caffe2)/' |
          sort -u || true)
  if [[ -n $found ]]; then
    echo "error: objects in $build_dir include the system's LibTorch headers:" >&2
    head -n 20 <<<"$found" >&2
    return 1
  fi
}
