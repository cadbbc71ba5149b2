// An ImageNet classifier: an InternImage backbone with its classification head, ready to run.
//
// Lifecycle: construct (weights uninitialised) -> load weights or InitRandomWeights -> Prepare
// (moves to the device/precision and, for fp32 on the CPU, builds the optimised plan) -> Logits.
// Logits is thread-safe after Prepare; the other methods are not.
#pragma once

#include <memory>

#include <ATen/core/Tensor.h>

#include "models/cpu/internimage_cpu_plan.h"
#include "models/backbone/internimage.h"
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

  // batch: (N, 3, S, S) normalised fp32 images (any device). Returns (N, num_classes) fp32 logits
  // on the CPU. Requires Prepare().
  at::Tensor Logits(const at::Tensor& batch) const;

 private:
  const Architecture& arch_;
  std::shared_ptr<models::backbone::InternImage> network_;
  RunOptions options_;
  bool prepared_ = false;
  std::unique_ptr<cpu::InternImageCpuPlan> plan_;
};

}  // namespace iis::models::classification
