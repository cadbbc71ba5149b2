// The optimised fp32 CPU forward pass of an InternImage model.
//
// Built once from a loaded model (weights are folded and reordered, the model is not changed),
// then run any number of times. Per block it does, on channels-last rows:
//   LayerNorm (SIMD kernel) -> input_proj and the fused offset+mask(+centre-scale) projection
//   (oneDNN matmuls) -> depthwise conv + LayerNorm + GELU fused in one pass -> DCNv3 with the
//   mask softmax fused (iis::dcnv3_softmax) -> output_proj with the layer-scale gamma folded into
//   its weights and the residual add fused (pre-norm), or LayerNorm + gamma + residual fused in one
//   pass (post-norm / res-post-norm) -> the MLP with GELU fused into fc1 and the residual into fc2.
// The classifier head folds its BatchNorm into the 1x1 conv. Results equal
// InternImage::ForwardLevels / ForwardLogits up to float rounding (tested to 1e-4 relative).
// Thread-safety: ForwardLevels/ForwardLogits may run concurrently (no mutable state).
#pragma once

#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/backbone/internimage.h"
#include "models/cpu/cpu_linear.h"

namespace iis::models::cpu {

class InternImageCpuPlan {
 public:
  // `model` must have fp32 CPU weights and stay alive and unchanged while the plan is used (the
  // stem, downsampling convs and the H/G head run from its tensors). Throws c10::Error otherwise.
  explicit InternImageCpuPlan(std::shared_ptr<const models::backbone::InternImage> model,
                              CpuLinear::Backend backend = CpuLinear::Backend::kDefault);
  ~InternImageCpuPlan();

  // x: (N, 3, H, W) fp32 CPU, H and W multiples of 32 for exact level sizes (any size works like
  // the reference). Returns the four level outputs as NCHW tensors (channels-last strides).
  std::vector<at::Tensor> ForwardLevels(const at::Tensor& x) const;

  // x: (N, 3, S, S). Returns (N, num_classes) logits. Requires a model with a classifier.
  at::Tensor ForwardLogits(const at::Tensor& x) const;

  const models::backbone::InternImage& model() const { return *model_; }

 private:
  struct Block;
  struct Level;
  at::Tensor RunStem(const at::Tensor& x) const;
  at::Tensor RunBlock(const Block& b, at::Tensor x, int64_t n, int64_t h, int64_t w) const;
  at::Tensor RunDcnBranch(const Block& b, const at::Tensor& in, int64_t n, int64_t h,
                          int64_t w) const;

  std::shared_ptr<const models::backbone::InternImage> model_;
  std::vector<std::unique_ptr<Level>> levels_;
  std::unique_ptr<CpuLinear> conv_head_;  // BN-folded 1x1 conv + GELU (T..XL)
};

}  // namespace iis::models::cpu
