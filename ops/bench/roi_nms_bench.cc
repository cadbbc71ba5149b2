// CPU benchmarks of iis::roi_align, iis::nms and iis::batched_nms on Mask R-CNN-sized problems
// (800 x 1216 input: P2 is 200 x 304 with 256 channels; RPN NMS over 5 levels x 1000 proposals;
// RCNN NMS over up to 1000 RoIs x 80 classes), with a naive RoIAlign loop as the baseline.
//
//   OMP_NUM_THREADS=1 build-*/bin/roi_nms_bench [--benchmark_filter=RoiAlign]
// (LibTorch defaults to one thread per physical core; OMP_NUM_THREADS sets the number.)
#include <ATen/ops/empty.h>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "ops/nms.h"
#include "ops/roi_align.h"

namespace iis::ops {
namespace {

constexpr int64_t kChannels = 256;
constexpr int64_t kHeight = 200;  // P2 of an 800 x 1216 input (stride 4)
constexpr int64_t kWidth = 304;
constexpr double kScale = 0.25;

at::Tensor FeatureMap() {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  at::Tensor t = at::empty({1, kChannels, kHeight, kWidth}, at::kFloat);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_ptr<float>()[i] = normal(rng);
  return t;
}

// RoIs that Mask R-CNN maps to P2: sqrt(area) below 112 image pixels.
at::Tensor P2Rois(int64_t count) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  at::Tensor rois = at::empty({count, 5}, at::kFloat);
  float* r = rois.data_ptr<float>();
  for (int64_t k = 0; k < count; ++k, r += 5) {
    const float w = 16.0f + 96.0f * unit(rng);
    const float h = 16.0f + 96.0f * unit(rng);
    const float x = (kWidth / kScale - w) * unit(rng);
    const float y = (kHeight / kScale - h) * unit(rng);
    r[0] = 0.0f;
    r[1] = x;
    r[2] = y;
    r[3] = x + w;
    r[4] = y + h;
  }
  return rois;
}

// A straightforward single-threaded RoIAlign (aligned, adaptive sampling): every output element
// recomputes its sample positions and reads its four taps, channel after channel. The baseline to
// beat; compare it with BM_RoiAlign under OMP_NUM_THREADS=1.
at::Tensor NaiveRoiAlign(const at::Tensor& input, const at::Tensor& rois, float scale,
                         int64_t pooled) {
  const int64_t channels = input.size(1);
  const int64_t height = input.size(2);
  const int64_t width = input.size(3);
  at::Tensor out = at::empty({rois.size(0), channels, pooled, pooled}, at::kFloat);
  const float* in = input.data_ptr<float>();
  const float* roi_data = rois.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  for (int64_t k = 0; k < rois.size(0); ++k) {
    const float* roi = roi_data + k * 5;
    const float x0 = roi[1] * scale - 0.5f;
    const float y0 = roi[2] * scale - 0.5f;
    const float bin_w = (roi[3] * scale - 0.5f - x0) / pooled;
    const float bin_h = (roi[4] * scale - 0.5f - y0) / pooled;
    const int grid_w = std::max(1, static_cast<int>(std::ceil(bin_w)));
    const int grid_h = std::max(1, static_cast<int>(std::ceil(bin_h)));
    for (int64_t c = 0; c < channels; ++c) {
      const float* plane = in + (static_cast<int64_t>(roi[0]) * channels + c) * height * width;
      for (int64_t ph = 0; ph < pooled; ++ph) {
        for (int64_t pw = 0; pw < pooled; ++pw) {
          float sum = 0.0f;
          for (int iy = 0; iy < grid_h; ++iy) {
            for (int ix = 0; ix < grid_w; ++ix) {
              float y = y0 + ph * bin_h + (iy + 0.5f) * bin_h / grid_h;
              float x = x0 + pw * bin_w + (ix + 0.5f) * bin_w / grid_w;
              if (y < -1.0f || y > height || x < -1.0f || x > width) continue;
              y = std::max(y, 0.0f);
              x = std::max(x, 0.0f);
              int64_t yl = static_cast<int64_t>(y);
              int64_t xl = static_cast<int64_t>(x);
              int64_t yh = yl + 1;
              int64_t xh = xl + 1;
              if (yl >= height - 1) y = static_cast<float>(yl = yh = height - 1);
              if (xl >= width - 1) x = static_cast<float>(xl = xh = width - 1);
              const float ly = y - yl;
              const float lx = x - xl;
              sum += (1 - ly) * (1 - lx) * plane[yl * width + xl] +
                     (1 - ly) * lx * plane[yl * width + xh] +
                     ly * (1 - lx) * plane[yh * width + xl] + ly * lx * plane[yh * width + xh];
            }
          }
          out_data[((k * channels + c) * pooled + ph) * pooled + pw] = sum / (grid_h * grid_w);
        }
      }
    }
  }
  return out;
}

// Args: number of RoIs, pooled size (7: bbox head, 14: mask head).
void BM_RoiAlign(benchmark::State& state) {
  const at::Tensor input = FeatureMap();
  const at::Tensor rois = P2Rois(state.range(0));
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        RoiAlign(input, rois, kScale, state.range(1), state.range(1), 0, true));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RoiAlign)
    ->Args({512, 7})
    ->Args({100, 14})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_RoiAlignNaive(benchmark::State& state) {
  const at::Tensor input = FeatureMap();
  const at::Tensor rois = P2Rois(state.range(0));
  for (auto _ : state) {
    benchmark::DoNotOptimize(NaiveRoiAlign(input, rois, kScale, state.range(1)));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RoiAlignNaive)
    ->Args({512, 7})
    ->Args({100, 14})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Clustered detections like RPN proposals or RCNN candidates: `objects` objects in an
// 800 x 1216 image, each surrounded by jittered boxes clipped to the image; scores uniform;
// idx = i % groups.
struct Detections {
  at::Tensor boxes;
  at::Tensor scores;
  at::Tensor idxs;
};
Detections Clustered(int64_t n, int objects, int64_t groups) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> centres(objects * 4);
  for (int o = 0; o < objects; ++o) {
    const float w = 16.0f + 300.0f * unit(rng);
    const float h = 16.0f + 300.0f * unit(rng);
    centres[o * 4 + 0] = (1216.0f - w) * unit(rng);
    centres[o * 4 + 1] = (800.0f - h) * unit(rng);
    centres[o * 4 + 2] = w;
    centres[o * 4 + 3] = h;
  }
  Detections d{at::empty({n, 4}, at::kFloat), at::empty({n}, at::kFloat),
               at::empty({n}, at::kLong)};
  for (int64_t i = 0; i < n; ++i) {
    const float* c = &centres[(rng() % objects) * 4];
    const float x = c[0] + 0.3f * c[2] * (unit(rng) - 0.5f);
    const float y = c[1] + 0.3f * c[3] * (unit(rng) - 0.5f);
    const float w = c[2] * (0.7f + 0.6f * unit(rng));
    const float h = c[3] * (0.7f + 0.6f * unit(rng));
    float* b = d.boxes.data_ptr<float>() + i * 4;  // clipped to the image, as decoded boxes are
    b[0] = std::clamp(x, 0.0f, 1216.0f);
    b[1] = std::clamp(y, 0.0f, 800.0f);
    b[2] = std::clamp(x + w, 0.0f, 1216.0f);
    b[3] = std::clamp(y + h, 0.0f, 800.0f);
    d.scores.data_ptr<float>()[i] = unit(rng);
    d.idxs.data_ptr<int64_t>()[i] = i % groups;
  }
  return d;
}

// RPN: 5 FPN levels x 1000 proposals, level-aware NMS at 0.7 (one call, N < 10000).
void BM_BatchedNmsRpn(benchmark::State& state) {
  const Detections d = Clustered(5000, 60, 5);
  int64_t kept = 0;
  for (auto _ : state) kept = BatchedNms(d.boxes, d.scores, d.idxs, 0.7).numel();
  state.counters["kept"] = static_cast<double>(kept);
}
BENCHMARK(BM_BatchedNmsRpn)->Unit(benchmark::kMillisecond)->UseRealTime();

// RCNN: Args: candidates (after the score > 0.05 filter; 80000 = 1000 RoIs x 80 classes, the
// N >= 10000 per-class path), class-aware NMS at 0.5.
void BM_BatchedNmsRcnn(benchmark::State& state) {
  const Detections d = Clustered(state.range(0), 40, 80);
  int64_t kept = 0;
  for (auto _ : state) kept = BatchedNms(d.boxes, d.scores, d.idxs, 0.5).numel();
  state.counters["kept"] = static_cast<double>(kept);
}
BENCHMARK(BM_BatchedNmsRcnn)->Arg(3000)->Arg(80000)->Unit(benchmark::kMillisecond)->UseRealTime();

// Plain NMS over 5000 boxes at 0.7.
void BM_Nms(benchmark::State& state) {
  const Detections d = Clustered(5000, 60, 1);
  int64_t kept = 0;
  for (auto _ : state) kept = Nms(d.boxes, d.scores, 0.7).numel();
  state.counters["kept"] = static_cast<double>(kept);
}
BENCHMARK(BM_Nms)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace iis::ops

BENCHMARK_MAIN();
