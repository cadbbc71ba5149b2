#!/usr/bin/env bash
# The server against the offline runner, for internimage_t_1k_224 on this machine's CPU:
#   1. offline: internimage_bench (the same forward the server runs) at batch 1 and batch 8;
#   2. the server at saturation (closed loop, concurrency 16, max_batch_size 8) and at
#      concurrency 1, with internimage-loadgen sending ready 3x224x224 float tensors (--tensor 224,
#      what internimage-predict --input takes), then with JPEG files (server-side decode and
#      preprocessing included).
# Prints the figures and the ratios the acceptance targets are stated in.
#
#   scripts/bench-server.sh [BUILD_DIR] [DURATION]      defaults: build 20s
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
duration=${2:-20s}
work=$(mktemp -d)
trap 'kill "${server_pid:-0}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== offline (internimage_bench, optimised CPU path, 2 threads)"
for b in 1 8; do
  "$build/bin/internimage_bench" --benchmark_filter="BM_InternImageT/batch:$b/path:0" \
    --benchmark_min_time=5 --benchmark_format=json > "$work/offline$b.json" 2>/dev/null
done
offline1_ms=$(python3 -c "import json;b=json.load(open('$work/offline1.json'))['benchmarks'][0];print(b['real_time'])")
offline8_ips=$(python3 -c "import json;b=json.load(open('$work/offline8.json'))['benchmarks'][0];print(b['images_per_second'])")
printf '  batch 1: %.1f ms per image\n  batch 8: %.1f images/s\n' "$offline1_ms" "$offline8_ips"

cat > "$work/server.pbtxt" <<'CFG'
worker_threads: 2
cpu_inference_threads: 2
models {
  architecture: "internimage_t_1k_224"
  batching { max_batch_size: 8 max_queue_delay_us: 2000 max_queue_size: 64 }
}
CFG
"$build/bin/internimage-server" --config="$work/server.pbtxt" --host=127.0.0.1 --port=0 \
  --metrics-port=-1 --port-file="$work/port" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do [[ -s $work/port ]] && break; sleep 0.1; done
port=$(cat "$work/port")
target="127.0.0.1:$port"
img=/usr/lib/python3/dist-packages/skimage/data/chelsea.png

run() {  # name, then loadgen arguments
  local name=$1; shift
  "$build/bin/internimage-loadgen" --target "$target" --rpc classify --warmup 3s \
    --duration "$duration" --no-progress --json "$work/$name.json" "$@" "$img" > "$work/$name.txt"
}
echo "== server (internimage-loadgen, $duration per step)"
run tensor_c16 --tensor 224 --concurrency 16
run tensor_c1 --tensor 224 --concurrency 1
run jpeg_c16 --concurrency 16
run jpeg_c1 --concurrency 1

python3 - "$work" "$offline1_ms" "$offline8_ips" <<'PY'
import json, sys
work, offline1_ms, offline8_ips = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def step(name):
    return json.load(open(f"{work}/{name}.json"))["steps"][0]
for kind in ("tensor", "jpeg"):
    sat, one = step(f"{kind}_c16"), step(f"{kind}_c1")
    label = "float tensors (no preprocessing)" if kind == "tensor" else "PNG files (server decodes and preprocesses)"
    print(f"  {label}:")
    print(f"    saturation (concurrency 16): {sat['throughput_rps']:.1f} images/s = "
          f"{100 * sat['throughput_rps'] / offline8_ips:.0f}% of offline batch 8; "
          f"mean batch {sat['server_timing_ms'].get('batch_size', float('nan')):.1f}")
    p50 = one["latency_ms"]["p50"]
    print(f"    concurrency 1: p50 {p50:.1f} ms = offline batch 1 + {p50 - offline1_ms:.1f} ms "
          f"(p99 {one['latency_ms']['p99']:.1f} ms)")
PY
