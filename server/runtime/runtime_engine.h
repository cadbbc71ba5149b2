// The runtime core: the Engine over a set of ModelRunners, built from a server configuration and a
// model loader. Torch-free: which networks run is decided by the injected loader (LibTorch models
// in server/runtime/libtorch_backend.h, fakes in the tests), so admission, deadlines,
// cancellation, drain and failure handling are tested without LibTorch.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "internimage/serving/v1/server_config.pb.h"
#include "server/engine/engine.h"
#include "server/metrics/metrics.h"
#include "server/runtime/network.h"

namespace iis::runtime {

// What the runtime core needs from the machine-learning side.
struct RuntimeBackend {
  // Builds each configured model (required).
  ModelLoader load_model;
  // Samples per-device GPU memory for the metrics; called at each scrape once a model runs on a
  // GPU. May be empty.
  std::function<std::vector<Metrics::GpuMemory>()> sample_gpu_memory;
};

// Builds every model of `config` (defaults applied and validated, see server/config) with
// `backend.load_model`, starts the shared worker pool (config.worker_threads) and one batch thread
// per execution instance, and runs the warm-up passes. Returns when the engine is ready to serve.
// `metrics` must outlive the engine. Errors: the loader's (prefixed with the model's name),
// INVALID_ARGUMENT for batching options the queue rejects, INTERNAL when a warm-up pass fails.
//
// The engine resolves requests with ModelCatalog (NOT_FOUND / INVALID_ARGUMENT), refuses work
// with UNAVAILABLE once Drain() has started, and its Drain() waits for every request it admitted
// (being preprocessed, queued, running or being postprocessed) until the grace period ends.
absl::StatusOr<std::unique_ptr<Engine>> CreateRuntimeEngine(
    const internimage::serving::v1::ServerConfig& config, Metrics* metrics, RuntimeBackend backend);

}  // namespace iis::runtime
