#!/usr/bin/env bash
# The checks CI runs after the README's test command (.ci/run), on the tree that command built:
#   1. formatting (.clang-format, every C++ source) and clang-tidy (.cc files of the last commit);
#   2. the whole project built and tested against LibTorch 2.x with CUDA (the GPU image's pinned
#      torch wheel and this machine's nvcc): scripts/check-libtorch2.sh;
#   3. the Kubernetes manifests and the Dockerfile validated and linted: deploy/check-manifests.sh;
#   4. the CPU image built and run: deploy/docker/check-image.sh.
# 3 and 4 run beside 2: they mostly download, install packages and take the README build's objects
# from ccache, so they use little CPU while 2 compiles; their output follows 2's. Prints the time of
# every step. Measured on this project's 2-core machines: README.md, "Continuous integration".
# Exit status: 0 when every check passed, non-zero otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

times=()
run_step() {  # run_step <name> <command...>
  local name=$1 start=$SECONDS
  shift
  printf '\n######## %s\n' "$name"
  "$@"
  times+=("$(printf '%5ss  %s' $((SECONDS - start)) "$name")")
  printf '######## %s: %ss\n' "$name" $((SECONDS - start))
}

# Steps started in the background: their logs, pids, names and start times.
log_dir=$(mktemp -d /tmp/iis-ci.XXXXXX)
background_pids=()
background_names=()
background_starts=()
start_background() {  # start_background <name> <command...>
  local name=$1
  shift
  printf '\n######## %s: started in the background\n' "$name"
  "$@" >"$log_dir/${#background_pids[@]}.log" 2>&1 &
  background_pids+=($!)
  background_names+=("$name")
  background_starts+=("$SECONDS")
}
finish_background() {  # waits for every background step, prints its log; fails if one failed
  local i status failed=0
  for i in "${!background_pids[@]}"; do
    status=0
    wait "${background_pids[$i]}" || status=$?
    printf '\n######## %s (ran in the background)\n' "${background_names[$i]}"
    cat "$log_dir/$i.log"
    times+=("$(printf '%5ss  %s (background, until collected)' \
               $((SECONDS - background_starts[i])) "${background_names[$i]}")")
    if [[ $status != 0 ]]; then
      echo "######## ${background_names[$i]}: FAILED (exit $status)"
      failed=1
    fi
  done
  return "$failed"
}

# A failing step ends the checks at once: the background steps are stopped with it.
trap 'kill "${background_pids[@]}" 2>/dev/null || true; rm -rf "$log_dir"' EXIT

run_step "clang-format" scripts/check-format.sh
run_step "clang-tidy (last commit)" scripts/check-tidy.sh
start_background "CPU image" deploy/docker/check-image.sh
start_background "manifests" deploy/check-manifests.sh
run_step "LibTorch 2.x with CUDA" scripts/check-libtorch2.sh
run_step "background steps" finish_background

printf '\n######## CI step times\n'
printf '%s\n' "${times[@]}"
echo "total ${SECONDS}s"
