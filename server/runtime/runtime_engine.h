// Factory of the LibTorch model runtime, the Engine implementation the server runs.
//
// This header is torch-free on purpose: server/main.cc includes it without pulling in LibTorch.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "internimage/serving/v1/server_config.pb.h"
#include "server/engine/engine.h"
#include "server/metrics/metrics.h"

namespace iis {

// Builds every model of `config` (defaults applied by the caller, see server/config), loads
// weights or seeds random ones (logging a warning), starts the worker pool and one batch thread per
// execution instance, and runs the warm-up passes. Returns when the engine is ready to serve.
// `metrics` must outlive the engine. Errors: INVALID_ARGUMENT (unknown architecture, bad device or
// precision, bad batching options), NOT_FOUND (weights file missing), FAILED_PRECONDITION (weights
// do not fit the model: every missing, unexpected and mis-shaped name is listed).
absl::StatusOr<std::unique_ptr<Engine>> CreateRuntimeEngine(
    const internimage::serving::v1::ServerConfig& config, Metrics* metrics);

}  // namespace iis
