#!/usr/bin/env bash
# Prints the distribution packages (Debian/Ubuntu) that own the shared libraries the given ELF
# files need directly (their DT_NEEDED entries), one name per line, sorted and unique. Installing
# these packages (apt pulls their own dependencies) makes the files runnable on a bare base image
# of the same distribution release.
#
#   deploy/docker/runtime-packages.sh [--skip DIR]... FILE...
#
#   --skip DIR  libraries resolved inside DIR are shipped with the files (e.g. PREFIX/lib with a
#               downloaded LibTorch) and need no package; repeatable.
#
# The GPU image's build stage runs it on the installed binaries, so its runtime stage installs
# exactly the Ubuntu packages it needs (their names differ from Debian's, e.g. the t64 suffixes);
# tests/deploy/deploy_static_test.py runs it here against scripts/setup.sh --runtime.
# Exit status: 0 listed, 1 a needed library is missing or belongs to no package, 2 bad usage.
set -euo pipefail

usage() {
  echo "usage: $0 [--skip DIR]... FILE..." >&2
  exit 2
}

skips=()
while [[ ${1:-} == --skip ]]; do
  [[ $# -ge 2 ]] || usage
  skips+=("$(readlink -f "$2")")
  shift 2
done
[[ $# -ge 1 ]] || usage

packages=()
failed=0
needed_paths=()  # libraries that must come from packages, as the loader resolves them
for file in "$@"; do
  if [[ ! -f $file ]]; then
    echo "runtime-packages: $file does not exist" >&2
    exit 1
  fi
  # soname -> resolved path, for every library the loader finds (ldd lists indirect ones too).
  declare -A resolved=()
  while read -r first second third _; do
    if [[ $second == "=>" ]]; then
      resolved[$first]=$third
    elif [[ $first == /* ]]; then
      resolved[${first##*/}]=$first  # the dynamic loader: "/lib64/ld-linux-x86-64.so.2 (0x...)"
    fi
  done < <(ldd "$file")
  while read -r soname; do
    path=${resolved[$soname]:-}
    if [[ -z $path || $path == "not" ]]; then
      echo "runtime-packages: $file needs $soname, which the loader does not find" >&2
      failed=1
      continue
    fi
    real=$(readlink -f "$path")
    shipped=0
    for dir in "${skips[@]}"; do
      [[ $real == "$dir"/* ]] && shipped=1
    done
    [[ $shipped -eq 1 ]] || needed_paths+=("$path")
  done < <(objdump -p "$file" | awk '$1 == "NEEDED" {print $2}')
  unset resolved
done
[[ $failed -eq 0 ]] || exit 1
[[ ${#needed_paths[@]} -gt 0 ]] || exit 0

# Each path is looked up as itself, as its symlink target and as its /usr or non-/usr twin (the
# merged /usr layout), all in one dpkg-query call: one call per path would take minutes.
candidates() {
  local path=$1
  printf '%s\n' "$path" "$(readlink -f "$path")" "/usr$path" "${path#/usr}"
}
declare -A owner=()
while IFS= read -r line; do
  # "pkg:arch: /path" or "pkg1, pkg2: /path"; diversion notes have no ": /".
  [[ $line == *": /"* ]] || continue
  owner[${line#*: }]=${line%%: /*}
done < <(for path in "${needed_paths[@]}"; do candidates "$path"; done | sort -u |
         xargs -d '\n' dpkg-query -S 2>/dev/null || true)
for path in "${needed_paths[@]}"; do
  found=""
  while IFS= read -r candidate; do
    [[ -z $found && -n ${owner[$candidate]:-} ]] && found=${owner[$candidate]}
  done < <(candidates "$path")
  if [[ -z $found ]]; then
    echo "runtime-packages: $path belongs to no package" >&2
    failed=1
    continue
  fi
  found=${found%%,*}
  packages+=("${found%%:*}")
done

[[ $failed -eq 0 ]] || exit 1
printf '%s\n' "${packages[@]}" | sort -u
