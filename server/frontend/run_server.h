// The life of a server process, shared by internimage-server and the test server
// (tests/fake_vision_server): metrics endpoint, gRPC server NOT_SERVING (probes answer while
// models load), engine creation, SERVING, wait for SIGTERM/SIGINT, graceful drain.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/config/server_config.h"
#include "server/engine/engine.h"
#include "server/metrics/metrics.h"

namespace iis {

// Process exit codes of the server binaries.
inline constexpr int kExitOk = 0;              // drained cleanly after SIGTERM/SIGINT
inline constexpr int kExitStartupFailure = 1;  // port in use, TLS files, engine creation ...
inline constexpr int kExitBadConfig = 2;       // invalid configuration, file or flags (main)
inline constexpr int kExitDrainTimeout = 3;    // the drain grace period ran out

// Builds the engine the server runs from the validated configuration; `metrics` outlives it.
using EngineFactory =
    std::function<absl::StatusOr<std::unique_ptr<Engine>>(const ServerConfig&, Metrics*)>;

struct RunServerOptions {
  // Validated, defaults applied (MakeServerConfig).
  ServerConfig config;
  EngineFactory create_engine;
  // Called once the server reports SERVING, with the bound gRPC and metrics ports (-1: no
  // metrics), e.g. to write port files. May be empty.
  std::function<void(int grpc_port, int metrics_port)> on_serving;
};

// Runs the server until SIGTERM or SIGINT, then drains within config.drain_grace_period_ms and
// returns an exit code above. A second signal while shutting down exits at once (code 130).
// Start-up failures are logged with their reason. Installs SIGTERM/SIGINT handlers for its duration
// (they only write to a self-pipe; a watcher thread does the rest), so call it once, from main().
int RunServer(const RunServerOptions& options);

// Writes `port` and a newline to `path` with common::WriteFileAtomically, so a reader never sees
// a partial file (the --port-file flags of the server binaries). An empty path writes nothing; a
// failure is logged. Thread-safe.
void WritePortFile(const std::string& path, int port);

}  // namespace iis
