#include "ops/ops_registry.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>

namespace iis::ops {

const std::vector<std::string>& ProjectOpNames() {
  static const std::vector<std::string> names = {
      "iis::dcnv3", "iis::dcnv3_softmax", "iis::roi_align", "iis::nms", "iis::batched_nms",
  };
  return names;
}

void CheckOpsRegistered() {
  auto& dispatcher = c10::Dispatcher::singleton();
  for (const auto& name : ProjectOpNames()) {
    auto handle = dispatcher.findSchema({name, ""});
    TORCH_CHECK(handle.has_value(), "custom op ", name,
                " is not registered: libiis_ops was not loaded or was linked without its kernels");
    TORCH_CHECK(handle->hasKernelForDispatchKey(c10::DispatchKey::CPU), "custom op ", name,
                " has no CPU kernel");
  }
}

bool HasCudaKernel(const std::string& op) {
  auto handle = c10::Dispatcher::singleton().findSchema({op, ""});
  return handle.has_value() && handle->hasKernelForDispatchKey(c10::DispatchKey::CUDA);
}

}  // namespace iis::ops
