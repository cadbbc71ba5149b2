// An ImageNet classifier: an InternImage backbone with its classification head, ready to run.
//
// Lifecycle: construct (weights uninitialised) -> load weights or InitRandomWeights -> Prepare
// (moves to the device/precision and, for fp32 on the CPU, builds the optimised plan) -> Logits.
// Logits is thread-safe after Prepare; the other methods are not.
#pragma once

#include <memory>

#include <ATen/core/Tensor.h>

#include "models/backbone/internimage.h"
#include "models/cpu/internimage_cpu_plan.h"
#include "models/registry.h"
#include "models/run_options.h"

namespace iis::models::classification {

class Classifier {
 public:
  // Throws std::invalid_argument when `arch` is not a classification architecture.
  explicit Classifier(const Architecture& arch);

  const Architecture& arch() const { return arch_; }
  // The module whose parameters checkpoints fill (official key names).
  models::backbone::InternImage& network() { return *network_; }

  // Moves the weights to options.device/dtype and builds the fast path. Throws c10::Error for an
  // unsupported combination (half precision on the CPU).
  void Prepare(const RunOptions& options);

  // The smallest input side the network takes. The official classifiers pool globally, so any
  // H x W from here up runs and equals the official model at that size (the trained size,
  // arch().input_size, is what the official preprocessing produces).
  static constexpr int64_t kMinInputSize = 1;

  // batch: (N, 3, H, W) normalised fp32 images (any device), H and W >= kMinInputSize. Returns
  // (N, num_classes) fp32 logits on the CPU. Requires Prepare(). Throws c10::Error for another
  // shape.
  at::Tensor Logits(const at::Tensor& batch) const;

 private:
  const Architecture& arch_;
  std::shared_ptr<models::backbone::InternImage> network_;
  RunOptions options_;
  bool prepared_ = false;
  std::unique_ptr<cpu::InternImageCpuPlan> plan_;
};

}  // namespace iis::models::classification
