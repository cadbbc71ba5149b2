#!/usr/bin/env bash
# Measures what one internimage-loadgen process sustains on the cheapest RPCs (health, getmodel)
# and its own CPU use per 1,000 requests (getrusage, as the loadgen reports it), against a local
# fake_vision_server (the real front end over the fake engine).
#
#   client/loadgen/loadgen_bench.sh [BUILD_DIR] [DURATION] [CONCURRENCY_LIST]
#   e.g. client/loadgen/loadgen_bench.sh build-client 10s 1,8,32,128
#
# Needs build targets internimage-loadgen and fake_vision_server. The server runs on the same
# machine and competes for the same cores, so the rate is a lower bound of the generator's
# capacity; "CPU ms per 1000 calls" is the generator's own cost (1000 / it = calls/s per core).
# Prints `uptime` first: timings on a shared machine are only comparable at similar load.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build}"
duration="${2:-10s}"
levels="${3:-1,8,32,128}"
loadgen="$build/bin/internimage-loadgen"
server="$build/tests/fake_vision_server"
for binary in "$loadgen" "$server"; do
  [[ -x "$binary" ]] || { echo "missing $binary: build it first" >&2; exit 1; }
done

work="$(mktemp -d)"
"$server" --port=0 --metrics-port=-1 --port-file="$work/port" --max-queue-size=100000 \
  --engine-threads=1 >"$work/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do [[ -s "$work/port" ]] && break; sleep 0.05; done
[[ -s "$work/port" ]] || { cat "$work/server.log" >&2; exit 1; }
target="127.0.0.1:$(cat "$work/port")"

echo "machine: $(nproc) cores; $(uptime)"
for rpc in health getmodel; do
  model=()
  [[ "$rpc" == getmodel ]] && model=(--model fake_classifier)
  echo
  echo "== $rpc: $loadgen --target $target --rpc $rpc ${model[*]} --concurrency $levels" \
       "--warmup 1s --duration $duration"
  "$loadgen" --target "$target" --rpc "$rpc" "${model[@]}" --concurrency "$levels" \
    --warmup 1s --duration "$duration" --no-progress --json "$work/$rpc.json"
done
