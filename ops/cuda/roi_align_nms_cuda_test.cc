// CUDA kernels of iis::roi_align, iis::nms and iis::batched_nms against the CPU kernels. Skips
// where no CUDA device is present (it builds against any LibTorch, CPU-only included).
#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ops/nms.h"
#include "ops/ops_registry.h"
#include "ops/roi_align.h"

namespace iis::ops {
namespace {

using ::testing::HasSubstr;

class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    for (const char* op : {"iis::roi_align", "iis::nms", "iis::batched_nms"}) {
      ASSERT_TRUE(HasCudaKernel(op)) << op << " has no CUDA kernel although CUDA is available";
    }
    Poison();
  }

  // Fills freed blocks of the CUDA caching allocator with 0xFF bytes (NaN as float, -1 as int64)
  // so that an output element a kernel forgets to write shows up.
  static void Poison() {
    std::vector<at::Tensor> blocks;
    blocks.push_back(at::empty({64 << 20}, at::TensorOptions(at::kCUDA).dtype(at::kByte)));
    for (int i = 0; i < 64; ++i) {
      blocks.push_back(at::empty({(i + 1) << 13}, at::TensorOptions(at::kCUDA).dtype(at::kByte)));
    }
    for (at::Tensor& b : blocks) b.fill_(0xFF);
  }
};

at::Tensor RandomNormal(std::mt19937* rng, std::vector<int64_t> shape) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  at::Tensor t = at::empty(shape, at::kFloat);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_ptr<float>()[i] = normal(*rng);
  return t;
}

// RoIs of every size class: inside, partly and wholly outside, tiny, huge, inverted.
at::Tensor RandomRois(std::mt19937* rng, int64_t count, int64_t batch, float image_w,
                      float image_h) {
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  at::Tensor rois = at::empty({count, 5}, at::kFloat);
  float* r = rois.data_ptr<float>();
  for (int64_t k = 0; k < count; ++k, r += 5) {
    constexpr float kSpreads[] = {0.02f, 0.3f, 1.0f, 4.0f};
    const float spread = kSpreads[k % 4];
    const float x = (2.0f * unit(*rng) - 0.5f) * image_w;
    const float y = (2.0f * unit(*rng) - 0.5f) * image_h;
    r[0] = static_cast<float>(k % batch);
    r[1] = x;
    r[2] = y;
    r[3] = x + (unit(*rng) - 0.1f) * spread * image_w;
    r[4] = y + (unit(*rng) - 0.1f) * spread * image_h;
  }
  return rois;
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.cpu().to(at::kDouble) - b.cpu().to(at::kDouble)).abs().max().item<double>();
}

TEST_F(CudaOpsTest, RoiAlignFloat32MatchesCpu) {
  std::mt19937 rng(3);
  const at::Tensor input = RandomNormal(&rng, {2, 67, 25, 38});
  const at::Tensor rois = RandomRois(&rng, 300, 2, 38 * 8, 25 * 8);
  for (const bool aligned : {true, false}) {
    for (const int64_t sampling_ratio : {0, 2}) {
      const at::Tensor cpu = RoiAlign(input, rois, 0.125, 7, 7, sampling_ratio, aligned);
      const at::Tensor gpu =
          RoiAlign(input.cuda(), rois.cuda(), 0.125, 7, 7, sampling_ratio, aligned);
      ASSERT_TRUE(gpu.is_cuda());
      ASSERT_EQ(gpu.sizes(), cpu.sizes());
      EXPECT_LE(MaxAbsDiff(gpu, cpu), 1e-5)
          << "aligned " << aligned << " sampling_ratio " << sampling_ratio;
    }
  }
}

TEST_F(CudaOpsTest, RoiAlignHalfPrecisionAccumulatesInFloat32) {
  std::mt19937 rng(4);
  const at::Tensor input = RandomNormal(&rng, {1, 32, 50, 60});
  const at::Tensor rois = RandomRois(&rng, 200, 1, 60 * 4, 50 * 4);
  for (const auto& [dtype, tolerance] :
       std::vector<std::pair<at::ScalarType, double>>{{at::kHalf, 2e-3}, {at::kBFloat16, 2e-2}}) {
    const at::Tensor rounded = input.to(dtype);
    // The CPU kernel on the same (rounded) values in float32: only the output rounding differs.
    const at::Tensor expected = RoiAlign(rounded.to(at::kFloat), rois, 0.25, 14, 14, 0, true);
    const at::Tensor gpu = RoiAlign(rounded.cuda(), rois.cuda(), 0.25, 14, 14, 0, true);
    EXPECT_EQ(gpu.scalar_type(), dtype);
    EXPECT_LE(MaxAbsDiff(gpu, expected), tolerance) << dtype;
    // RoIs in the input's dtype are accepted and used at that precision.
    const at::Tensor rounded_rois = rois.to(dtype);
    const at::Tensor expected_rounded_rois =
        RoiAlign(rounded.to(at::kFloat), rounded_rois.to(at::kFloat), 0.25, 14, 14, 0, true);
    EXPECT_LE(MaxAbsDiff(RoiAlign(rounded.cuda(), rounded_rois.cuda(), 0.25, 14, 14, 0, true),
                         expected_rounded_rois),
              tolerance)
        << dtype;
  }
}

TEST_F(CudaOpsTest, RoiAlignEdgeCases) {
  std::mt19937 rng(5);
  const at::Tensor input = RandomNormal(&rng, {2, 8, 9, 11}).cuda();
  const at::Tensor empty =
      RoiAlign(input, at::empty({0, 5}, at::kFloat).cuda(), 1.0, 7, 7, 0, true);
  EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{0, 8, 7, 7}));
  std::vector<float> bad = {2, 0, 0, 4, 4};
  const at::Tensor bad_rois = at::from_blob(bad.data(), {1, 5}, at::kFloat).cuda();
  try {
    RoiAlign(input, bad_rois, 1.0, 7, 7, 0, true);
    ADD_FAILURE() << "batch index 2 of 2 was accepted";
  } catch (const c10::Error& e) {
    EXPECT_THAT(e.what_without_backtrace(), HasSubstr("batch index 2, expected a value in [0, 2)"));
  }
}

struct Detections {
  at::Tensor boxes;
  at::Tensor scores;
  at::Tensor idxs;
};

// Clustered boxes (heavy overlaps), some zero-area and inverted ones, scores with ties.
Detections RandomDetections(std::mt19937* rng, int64_t n, int64_t classes) {
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  Detections d{at::empty({n, 4}, at::kFloat), at::empty({n}, at::kFloat),
               at::empty({n}, at::kLong)};
  float* b = d.boxes.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i, b += 4) {
    const float cx = 50.0f * static_cast<float>((*rng)() % 9);
    const float cy = 40.0f * static_cast<float>((*rng)() % 7);
    const float w = 20.0f + 60.0f * unit(*rng);
    const float h = 20.0f + 60.0f * unit(*rng);
    b[0] = cx - w / 2;
    b[1] = cy - h / 2;
    b[2] = cx + w / 2;
    b[3] = cy + h / 2;
    if (i % 50 == 0) b[2] = b[0];
    if (i % 77 == 0) std::swap(b[1], b[3]);
    d.scores.data_ptr<float>()[i] = static_cast<float>((*rng)() % 1000) / 1000.0f;  // ties
    d.idxs.data_ptr<int64_t>()[i] = static_cast<int64_t>((*rng)() % classes);
  }
  return d;
}

TEST_F(CudaOpsTest, NmsIsIdenticalToCpu) {
  std::mt19937 rng(6);
  for (const int64_t n : {0, 1, 63, 64, 65, 1000, 5000}) {
    const Detections d = RandomDetections(&rng, n, 1);
    for (const double threshold : {0.0, 0.5, 0.7, 1.0}) {
      const at::Tensor cpu = Nms(d.boxes, d.scores, threshold);
      const at::Tensor gpu = Nms(d.boxes.cuda(), d.scores.cuda(), threshold);
      ASSERT_TRUE(gpu.is_cuda());
      EXPECT_TRUE(gpu.cpu().equal(cpu)) << "n " << n << " threshold " << threshold;
    }
  }
}

TEST_F(CudaOpsTest, BatchedNmsIsIdenticalToCpu) {
  std::mt19937 rng(7);
  // 5 levels x 1000 (RPN, one NMS call) and 12000 boxes of 80 classes (RCNN, per-class path).
  for (const auto& [n, classes] :
       std::vector<std::pair<int64_t, int64_t>>{{5000, 5}, {12000, 80}}) {
    const Detections d = RandomDetections(&rng, n, classes);
    for (const double threshold : {0.5, 0.7}) {
      const at::Tensor cpu = BatchedNms(d.boxes, d.scores, d.idxs, threshold);
      const at::Tensor gpu = BatchedNms(d.boxes.cuda(), d.scores.cuda(), d.idxs.cuda(), threshold);
      EXPECT_TRUE(gpu.cpu().equal(cpu)) << "n " << n << " threshold " << threshold;
    }
  }
  const Detections none = RandomDetections(&rng, 0, 1);
  EXPECT_EQ(BatchedNms(none.boxes.cuda(), none.scores.cuda(), none.idxs.cuda(), 0.5).numel(), 0);
}

}  // namespace
}  // namespace iis::ops
