#!/usr/bin/env bash
# Runs every benchmark of docs/performance.md on this machine, one case per process (so that each
# case's peak memory is its own), and then the server benchmark. Run it on an otherwise idle
# machine: the figures are wall-clock times on all cores.
#
#   scripts/bench.sh [BUILD_DIR]        default build; set BENCH_SKIP_SERVER=1 to skip the server
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin="$build/bin"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"

each() {  # binary, then the benchmark names (regexes) to run one per process
  local binary=$1; shift
  for name in "$@"; do
    "$bin/$binary" --benchmark_filter="^$name\$" --benchmark_min_time=3 2>/dev/null |
      grep -E "^(BM_|Kernel|Composed)|speed-up|batch [18]:" || true
  done
}

echo; echo "== DCNv3, all 30 layers of InternImage-T at 224x224 (fp32, 2 threads)"
"$bin/dcnv3_bench" --benchmark_min_time=2 2>/dev/null | sed -n '/^Kernel\|^Composed\|Speed-up\|batch [18]:/p'

echo; echo "== internimage_t_1k_224 forward (fp32; path 0 = optimised/oneDNN, 1 = optimised/ATen matmuls, 2 = ATen reference)"
each internimage_bench 'BM_InternImageT/batch:1/path:0/min_time:3.000/real_time' \
  'BM_InternImageT/batch:8/path:0/min_time:3.000/real_time' \
  'BM_InternImageT/batch:1/path:1/min_time:3.000/real_time' \
  'BM_InternImageT/batch:8/path:1/min_time:3.000/real_time' \
  'BM_InternImageT/batch:1/path:2/min_time:3.000/real_time' \
  'BM_InternImageT/batch:8/path:2/min_time:3.000/real_time'

echo; echo "== Mask R-CNN-T at 800x1333, UperNet-T at 512x512 (fp32)"
for name in BM_MaskRcnnT BM_UperNetT; do
  "$bin/dense_bench" --benchmark_filter="$name" 2>/dev/null | grep -E "^BM_" || true
done

echo; echo "== RoIAlign and NMS (CPU)"
"$bin/roi_nms_bench" --benchmark_min_time=0.5 2>/dev/null | grep -E "^BM_" || true

echo; echo "== batching queue and thread pool"
"$bin/batching_bench" --benchmark_min_time=0.3 2>/dev/null | grep -E "^BM_" || true

if [[ ${BENCH_SKIP_SERVER:-0} != 1 ]]; then
  echo
  scripts/bench-server.sh "$build" 20s
fi
