// internimage-server: serves InternImage classification, detection and segmentation over gRPC.
//
// Flags are declared here only (common/command_line.h has the style); everything else takes
// options (server/config, server/frontend).
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/command_line.h"
#include "common/logging.h"
#include "server/config/server_config.h"
#include "server/frontend/run_server.h"
#include "server/frontend/server_flags.h"
#include "server/runtime/libtorch_backend.h"

namespace {

constexpr char kDescription[] = R"(Serves InternImage vision models over gRPC.

  internimage-server                          default models on :50051, metrics on :8002
  internimage-server --config server.pbtxt --port 50052 --metrics-port -1
  internimage-server --tls-cert server.pem --tls-key server.key --tls-client-ca ca.pem

Flags override the configuration file. Health (grpc.health.v1) reports NOT_SERVING until the
models are loaded and warmed up, and again as soon as SIGTERM/SIGINT starts the drain.
)";

constexpr char kFooter[] = R"(
Exit codes: 0 drained cleanly, 1 start-up failed (port in use, TLS files, models),
            2 invalid command line or configuration (file or flags), 3 the drain grace period
            ran out, 130 a second SIGTERM/SIGINT while shutting down.)";

// Declares every flag of internimage-server on `app`, bound to `flags` and `version`.
void DeclareFlags(CLI::App& app, iis::ServerFlags& flags, bool& version) {
  iis::AddServerFlags(app, &flags);
  app.add_flag("--version", version, "Print the version and exit.");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(kDescription, "internimage-server");
  iis::common::SetUpCommandLine(app, kFooter);
  iis::ServerFlags flags;
  bool version = false;
  DeclareFlags(app, flags, version);
  absl::StatusOr<iis::common::CommandLineResult> parsed =
      iis::common::ParseCommandLine(app, iis::common::ArgsOf(argc, argv));
  if (!parsed.ok()) {
    std::fprintf(stderr, "internimage-server: %s (see --help)\n",
                 std::string(parsed.status().message()).c_str());
    return iis::kExitBadConfig;
  }
  if (*parsed == iis::common::CommandLineResult::kHelp) {
    std::fputs(app.help().c_str(), stdout);
    return iis::kExitOk;
  }

  if (version) {
    std::fputs("internimage-server 0.1.0\n", stdout);
    return iis::kExitOk;
  }

  absl::StatusOr<iis::ServerConfig> config = iis::MakeServerConfig(flags.config, flags.overrides);
  if (!config.ok()) {
    iis::common::Log(iis::common::LogSeverity::kError, config.status().ToString());
    return iis::kExitBadConfig;
  }
  if (flags.print_config) {
    std::fputs(iis::ServerConfigToText(*config).c_str(), stdout);
    return iis::kExitOk;
  }

  iis::RunServerOptions options;
  options.config = *std::move(config);
  options.create_engine = [](const iis::ServerConfig& config, iis::Metrics* metrics) {
    return iis::runtime::CreateRuntimeEngine(
        config, metrics, iis::runtime::LibTorchBackend(config.cpu_inference_threads()));
  };
  options.on_serving = [&flags](int grpc_port, int metrics_port) {
    iis::WritePortFile(flags.port_file, grpc_port);
    iis::WritePortFile(flags.metrics_port_file, metrics_port);
  };
  return iis::RunServer(options);
}
