// The models on CUDA against the CPU (label gpu; skipped where LibTorch has no CUDA device).
// Run by scripts/gpu-check.sh on the lent GPU machine.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "models/classification/classifier.h"
#include "models/dense_batch.h"
#include "models/detection/mask_rcnn.h"
#include "models/layers.h"
#include "models/registry.h"
#include "models/segmentation/upernet.h"

namespace iis::models {
namespace {

bool HaveCuda() { return at::hasCUDA() && at::getNumGPUs() > 0; }

double RelativeError(const at::Tensor& got, const at::Tensor& want) {
  return (got.to(at::kCPU, at::kFloat) - want).abs().max().item<double>() /
         std::max(1e-6, want.abs().max().item<double>());
}

class ClassifierCudaTest : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(ClassifierCudaTest, LogitsMatchTheCpu) {
  if (!HaveCuda()) GTEST_SKIP() << "no CUDA device";
  const Architecture& arch = *FindArchitecture("internimage_t_1k_224");
  classification::Classifier cpu(arch), gpu(arch);
  InitRandomWeights(cpu.network(), 5);
  InitRandomWeights(gpu.network(), 5);
  cpu.Prepare(RunOptions{});
  RunOptions cuda;
  cuda.device = at::Device(at::kCUDA, 0);
  cuda.dtype = GetParam();
  gpu.Prepare(cuda);
  const at::Tensor x = at::randn({4, 3, 224, 224});
  const at::Tensor want = cpu.Logits(x);
  const at::Tensor got = gpu.Logits(x);
  // fp32 differs by summation order only; fp16/bf16 by their rounding through 30 blocks.
  const double tolerance =
      GetParam() == at::kFloat ? 1e-3 : (GetParam() == at::kHalf ? 5e-2 : 1e-1);
  EXPECT_LT(RelativeError(got, want), tolerance);
  EXPECT_TRUE(at::equal(got.argmax(1), want.argmax(1)) || GetParam() != at::kFloat);
}

INSTANTIATE_TEST_SUITE_P(Precisions, ClassifierCudaTest,
                         ::testing::Values(at::kFloat, at::kHalf, at::kBFloat16));

TEST(DenseModelsCudaTest, DetectionAndSegmentationRunAndAgreeWithTheCpu) {
  if (!HaveCuda()) GTEST_SKIP() << "no CUDA device";
  RunOptions cuda;
  cuda.device = at::Device(at::kCUDA, 0);
  const at::Tensor image = at::randn({3, 256, 320});
  const at::Tensor batch = CollateImages({image}, 32);
  DenseImageMeta meta;
  meta.height = 256;
  meta.width = 320;
  meta.original_height = 240;
  meta.original_width = 300;
  meta.scale_x = 320.0f / 300.0f;
  meta.scale_y = 256.0f / 240.0f;

  const Architecture& seg_arch = *FindArchitecture("upernet_internimage_t_512_160k_ade20k");
  segmentation::UperNet seg_cpu(seg_arch), seg_gpu(seg_arch);
  InitRandomWeights(seg_cpu.network(), 9);
  InitRandomWeights(seg_gpu.network(), 9);
  seg_cpu.Prepare(RunOptions{});
  seg_gpu.Prepare(cuda);
  EXPECT_LT(RelativeError(seg_gpu.Logits(batch), seg_cpu.Logits(batch)), 1e-3);
  const auto maps = seg_gpu.Segment(batch, {meta});
  ASSERT_EQ(maps.size(), 1u);
  EXPECT_EQ(maps[0].label_map.sizes(), (at::IntArrayRef{240, 300}));

  const Architecture& det_arch = *FindArchitecture("mask_rcnn_internimage_t_fpn_1x_coco");
  detection::MaskRcnn det(det_arch);
  InitRandomWeights(det.network(), 9);
  det.Prepare(cuda);
  const auto dets = det.Detect(batch, {meta});
  ASSERT_EQ(dets.size(), 1u);
  if (dets[0].boxes.size(0) > 0) {
    EXPECT_LE(dets[0].boxes.select(1, 2).max().item<float>(), 300.0f);
    EXPECT_LE(dets[0].boxes.select(1, 3).max().item<float>(), 240.0f);
  }
}

}  // namespace
}  // namespace iis::models
