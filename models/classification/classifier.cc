#include "models/classification/classifier.h"

#include <ATen/ATen.h>

#include <stdexcept>

namespace iis::models::classification {

Classifier::Classifier(const Architecture& arch) : arch_(arch) {
  if (arch.task != Task::kClassification) {
    throw std::invalid_argument(arch.name + " is not a classification architecture");
  }
  network_ = std::make_shared<models::backbone::InternImage>(arch.backbone, arch.num_classes);
}

void Classifier::Prepare(const RunOptions& options) {
  TORCH_CHECK(options.device.is_cuda() || options.dtype == at::kFloat,
              "Classifier: ", options.dtype, " runs on CUDA only; use float32 on the CPU");
  network_->to(options.device, options.dtype);
  options_ = options;
  plan_.reset();
  if (options.device.is_cpu() && options.dtype == at::kFloat && options.optimized_cpu) {
    plan_ = std::make_unique<cpu::InternImageCpuPlan>(network_);
  }
  prepared_ = true;
}

at::Tensor Classifier::Logits(const at::Tensor& batch) const {
  TORCH_CHECK(prepared_, "Classifier: call Prepare() before Logits()");
  TORCH_CHECK(batch.dim() == 4 && batch.size(0) >= 1 && batch.size(1) == 3 &&
                  batch.size(2) >= kMinInputSize && batch.size(3) >= kMinInputSize,
              arch_.name, ": input must be (N, 3, H, W) with N >= 1 and H, W >= ", kMinInputSize,
              ", got ", batch.sizes());
  at::InferenceMode guard;
  if (plan_) return plan_->ForwardLogits(batch.to(at::kCPU, at::kFloat).contiguous());
  const at::Tensor x = batch.to(options_.device, options_.dtype);
  return network_->ForwardLogits(x).to(at::kCPU, at::kFloat);
}

}  // namespace iis::models::classification
