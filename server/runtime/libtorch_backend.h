// The runtime's backend for the LibTorch models of models/ (classification, Mask R-CNN, UperNet):
// what internimage-server runs. The header is torch-free on purpose, so server/main.cc includes it
// without pulling in LibTorch.
#pragma once

#include "server/runtime/runtime_engine.h"

namespace iis::runtime {

// Sets LibTorch's intra-op threads for CPU forward passes (`cpu_inference_threads`; 0: all cores)
// and returns the backend whose loader builds each configured model: architecture from the
// registry, weights (file, or seeded random ones with a warning in the log), device placement
// ("auto" picks CUDA when present), precision, one Network per instance (CPU instances share one
// set of weights; all LibTorch CPU work runs on one executor thread). The first load checks that
// every custom op of libiis_ops is registered (INTERNAL otherwise). Loader errors:
// INVALID_ARGUMENT (unknown architecture, device or precision not available), NOT_FOUND (weights
// file missing), FAILED_PRECONDITION (weights do not fit the model; every missing, unexpected and
// mis-shaped name is listed), INTERNAL. Call once per process.
RuntimeBackend LibTorchBackend(int cpu_inference_threads);

}  // namespace iis::runtime
