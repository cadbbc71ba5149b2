#!/usr/bin/env bash
# Fails when a tracked file refers to a folder beside the repository (the reference material some
# development machines keep next to their checkout). Whatever the build, the tests and the binaries
# read must live in the repository, so a plain `git clone` builds and passes on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
# The pattern is spelled with brackets so that this file does not match itself.
if hits=$(git grep -nE '[.][.]/shared([/"'"'"' ]|$)' -- .); then
  echo "check-standalone: these lines refer to a folder outside the repository:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "check-standalone: no reference outside the repository"
