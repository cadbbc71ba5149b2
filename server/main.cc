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
#include "server/runtime/libtorch_backend.h"

namespace {

using iis::common::FlagNames;

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

struct Flags {
  std::string config;
  iis::ConfigOverrides overrides;
  std::string port_file;
  std::string metrics_port_file;
  bool print_config = false;
  bool version = false;
};

// Declares every flag of the server on `app`, bound to `flags`.
void DeclareFlags(CLI::App& app, Flags& flags) {
  using iis::common::Integer;
  iis::ConfigOverrides& o = flags.overrides;
  app.add_option(FlagNames("config"), flags.config,
                 "Server configuration, a text-format internimage.serving.v1.ServerConfig file "
                 "(proto/internimage/serving/v1/server_config.proto). Empty: the defaults, one "
                 "model per task with seeded random weights.");
  app.add_option(FlagNames("host"), o.host,
                 "Address to listen on; replaces the host of the configuration's listen_address "
                 "(default 0.0.0.0).");
  app.add_option(FlagNames("port"), o.port,
                 "gRPC port (default 50051); 0 picks a free port. Replaces the port of "
                 "listen_address.")
      ->check(Integer());
  app.add_option(FlagNames("metrics-port"), o.metrics_port,
                 "Prometheus /metrics port (default 8002); -1 turns metrics off, 0 picks a free "
                 "port.")
      ->check(Integer());
  iis::common::AddDurationOption(app, "drain-grace", &o.drain_grace,
                                 "After SIGTERM/SIGINT, how long in-flight requests may take to "
                                 "finish, e.g. 30s (default 30s).",
                                 -absl::InfiniteDuration(), absl::InfiniteDuration());
  app.add_option(FlagNames("worker-threads"), o.worker_threads,
                 "Threads that decode, preprocess and postprocess (default: the number of CPU "
                 "cores).")
      ->check(Integer());
  app.add_option(FlagNames("cpu-inference-threads"), o.cpu_inference_threads,
                 "Intra-op threads of each CPU forward pass (default: the number of CPU cores).")
      ->check(Integer());
  app.add_option(FlagNames("device"), o.device,
                 "Device of every model: auto, cpu, cuda or cuda:N (default: each model's, auto).");
  app.add_option(FlagNames("max-message-bytes"), o.max_message_bytes,
                 "Largest request or answer message in bytes (default 67108864 = 64 MiB).")
      ->check(Integer());
  app.add_option(FlagNames("max-image-pixels"), o.max_image_pixels,
                 "Largest image (width x height) accepted, read from the header before decoding "
                 "(default 40000000).")
      ->check(Integer());
  app.add_option(FlagNames("tls-cert"), o.tls_cert_file,
                 "PEM certificate chain of the server; with --tls-key turns TLS on.");
  app.add_option(FlagNames("tls-key"), o.tls_key_file, "PEM private key of the server.");
  app.add_option(FlagNames("tls-client-ca"), o.tls_client_ca_file,
                 "PEM CA certificate(s) that sign client certificates; set to require mutual TLS.");
  app.add_option(FlagNames("port-file"), flags.port_file,
                 "Once serving, write the bound gRPC port to this file (useful with --port 0).");
  app.add_option(FlagNames("metrics-port-file"), flags.metrics_port_file,
                 "Once serving, write the bound metrics port to this file (useful with "
                 "--metrics-port 0).");
  app.add_flag(FlagNames("print-config"), flags.print_config,
               "Print the effective configuration (file + defaults + flags) and exit.");
  app.add_flag("--version", flags.version, "Print the version and exit.");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(kDescription, "internimage-server");
  iis::common::SetUpCommandLine(app, kFooter);
  Flags flags;
  DeclareFlags(app, flags);
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

  if (flags.version) {
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
