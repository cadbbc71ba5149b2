#!/usr/bin/env bash
# Checks that C++ sources follow .clang-format (clang-format from Debian).
#
#   scripts/check-format.sh            every tracked C++/CUDA source
#   scripts/check-format.sh --fix      reformat them in place instead of checking
#   scripts/check-format.sh FILE...    only these files
# Exit status: 0 clean (or fixed), 1 a file differs (the diff is printed), 2 clang-format missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is not installed" >&2; exit 2; }
fix=0
if [[ ${1:-} == --fix ]]; then
  fix=1
  shift
fi
if [[ $# -gt 0 ]]; then
  files=("$@")
else
  mapfile -t files < <(git ls-files '*.cc' '*.h' '*.cu' '*.cc.in')
fi
status=0
for f in "${files[@]}"; do
  [[ -f $f ]] || continue
  if [[ $fix == 1 ]]; then
    clang-format -i "$f"
  elif ! diff -u "$f" <(clang-format "$f") >/tmp/check-format.$$ 2>&1; then
    echo "check-format: $f differs from .clang-format (scripts/check-format.sh --fix $f):"
    head -40 /tmp/check-format.$$
    status=1
  fi
done
rm -f /tmp/check-format.$$
[[ $status == 0 && $fix == 0 ]] && echo "check-format: ${#files[@]} files follow .clang-format"
exit $status
