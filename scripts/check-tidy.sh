#!/usr/bin/env bash
# Runs clang-tidy (Debian's, with the checks of .clang-tidy, warnings as errors) on the C++ sources
# a change touches, against the compile commands of a configured build tree.
#
#   scripts/check-tidy.sh               the .cc files changed since BASE (default: HEAD~1), plus
#                                       uncommitted ones; none when BASE does not exist (a
#                                       shallow clone of one commit: nothing to compare with)
#   scripts/check-tidy.sh FILE...       only these files
# Environment: IIS_BUILD_DIR (default build; needs compile_commands.json, which the project's CMake
# writes), IIS_TIDY_BASE (the git revision to compare with, default HEAD~1).
# Only files in the build's compile database are checked (CUDA sources and the GPU-only bindings
# of a CPU build are not). Exit status: 0 clean, 1 findings, 2 setup missing.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${IIS_BUILD_DIR:-build}"
command -v clang-tidy >/dev/null || { echo "check-tidy: clang-tidy is not installed" >&2; exit 2; }
[[ -f $build_dir/compile_commands.json ]] || {
  echo "check-tidy: $build_dir/compile_commands.json is missing: configure the build first" >&2
  exit 2
}
if [[ $# -gt 0 ]]; then
  candidates=("$@")
else
  base="${IIS_TIDY_BASE:-HEAD~1}"
  if git rev-parse -q --verify "$base^{commit}" >/dev/null; then
    mapfile -t candidates < <({ git diff --name-only --diff-filter=d "$base" -- '*.cc'
                                git ls-files --others --exclude-standard -- '*.cc'; } | sort -u)
  else
    echo "check-tidy: $base does not exist here (a shallow clone?): no change to check"
    exit 0
  fi
fi
files=()
for f in "${candidates[@]}"; do
  [[ -f $f ]] && grep -q "\"file\": \"$(realpath "$f")\"" "$build_dir/compile_commands.json" &&
    files+=("$f")
done
if [[ ${#files[@]} -eq 0 ]]; then
  echo "check-tidy: no changed C++ source to check"
  exit 0
fi
echo "check-tidy: ${#files[@]} file(s): ${files[*]}"
status=0
for f in "${files[@]}"; do
  if ! clang-tidy -p "$build_dir" --quiet "$f" 2>/dev/null; then status=1; fi
done
[[ $status == 0 ]] && echo "check-tidy: clean"
exit $status
