// Benchmarks of the dense models on the CPU, fp32 (Google Benchmark):
//   BM_MaskRcnnT: mask_rcnn_internimage_t_fpn_1x_coco on one 800 x 1333 image (padded 800 x 1344)
//   BM_UperNetT:  upernet_internimage_t_512_160k_ade20k on one 512 x 512 image
//
//   build/bin/dense_bench --benchmark_filter=MaskRcnn    (one model per process for peak_rss_mb)
//
// Counters: seconds_per_image; backbone_share, neck_share, heads_share (and postprocess_share for
// UperNet) of the time of a forward pass; peak_rss_mb (the process's peak resident set). The
// inputs are seeded noise and the weights seeded random; Mask R-CNN's classifier weights are
// widened so that, as with real weights, 100 detections reach the mask head.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <chrono>

#include "models/bench/peak_rss.h"
#include "models/dense_batch.h"
#include "models/detection/mask_rcnn.h"
#include "models/registry.h"
#include "models/segmentation/upernet.h"
#include "models/weights.h"

namespace iis::models {
namespace {

void SetCounters(benchmark::State& state, const DenseStageTimes& sum, double total, bool neck,
                 bool post) {
  state.counters["seconds_per_image"] = total / static_cast<double>(state.iterations());
  state.counters["backbone_share"] = sum.backbone_seconds / total;
  if (neck) state.counters["neck_share"] = sum.neck_seconds / total;
  state.counters["heads_share"] = sum.heads_seconds / total;
  if (post) state.counters["postprocess_share"] = sum.postprocess_seconds / total;
  state.counters["peak_rss_mb"] = bench::PeakRssMb();
}

void Add(DenseStageTimes* sum, const DenseStageTimes& t) {
  sum->backbone_seconds += t.backbone_seconds;
  sum->neck_seconds += t.neck_seconds;
  sum->heads_seconds += t.heads_seconds;
  sum->postprocess_seconds += t.postprocess_seconds;
}

void BM_MaskRcnnT(benchmark::State& state) {
  at::set_num_threads(2);
  detection::MaskRcnn model(*FindArchitecture("mask_rcnn_internimage_t_fpn_1x_coco"));
  RandomWeights(model.network(), 0);
  {
    at::NoGradGuard no_grad;
    model.network().roi_head->bbox_head->fc_cls->weight.mul_(4.0);
  }
  model.Prepare(RunOptions{});
  at::manual_seed(0);
  DenseImageMeta meta;
  meta.height = meta.original_height = 800;
  meta.width = meta.original_width = 1333;
  const at::Tensor batch = CollateImages({at::randn({3, 800, 1333})}, 32);
  int64_t detections = model.Detect(batch, {meta})[0].scores.size(0);  // warm-up
  DenseStageTimes sum;
  double total = 0;
  for (auto _ : state) {
    DenseStageTimes t;
    const auto start = std::chrono::steady_clock::now();
    detections = model.Detect(batch, {meta}, {}, &t)[0].scores.size(0);
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    Add(&sum, t);
  }
  SetCounters(state, sum, total, /*neck=*/true, /*post=*/false);
  state.counters["detections"] = static_cast<double>(detections);
}

void BM_UperNetT(benchmark::State& state) {
  at::set_num_threads(2);
  segmentation::UperNet model(*FindArchitecture("upernet_internimage_t_512_160k_ade20k"));
  RandomWeights(model.network(), 0);
  model.Prepare(RunOptions{});
  at::manual_seed(0);
  const DenseImageMeta meta = IdentityMeta(512, 512);
  const at::Tensor batch = at::randn({1, 3, 512, 512});
  model.Segment(batch, {meta});  // warm-up
  DenseStageTimes sum;
  double total = 0;
  for (auto _ : state) {
    DenseStageTimes t;
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(model.Segment(batch, {meta}, {}, &t));
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    Add(&sum, t);
  }
  SetCounters(state, sum, total, /*neck=*/false, /*post=*/true);
}

BENCHMARK(BM_MaskRcnnT)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_UperNetT)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(3);

}  // namespace
}  // namespace iis::models

BENCHMARK_MAIN();
