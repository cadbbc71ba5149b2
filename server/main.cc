// internimage-server: serves InternImage classification, detection and segmentation over gRPC.
//
// Flags are defined here only; everything else takes options (server/config, server/frontend).
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/config/server_config.h"
#include "common/logging.h"
#include "server/frontend/run_server.h"
#include "server/runtime/libtorch_backend.h"

ABSL_FLAG(std::string, config, "",
          "Server configuration, a text-format internimage.serving.v1.ServerConfig file "
          "(proto/internimage/serving/v1/server_config.proto). Empty: the defaults, one model per "
          "task with seeded random weights.");
ABSL_FLAG(std::optional<std::string>, host, std::nullopt,
          "Address to listen on; replaces the host of the configuration's listen_address "
          "(default 0.0.0.0).");
ABSL_FLAG(std::optional<int>, port, std::nullopt,
          "gRPC port (default 50051); 0 picks a free port. Replaces the port of listen_address.");
ABSL_FLAG(std::optional<int>, metrics_port, std::nullopt,
          "Prometheus /metrics port (default 8002); -1 turns metrics off, 0 picks a free port.");
ABSL_FLAG(std::optional<absl::Duration>, drain_grace, std::nullopt,
          "After SIGTERM/SIGINT, how long in-flight requests may take to finish, e.g. 30s "
          "(default 30s).");
ABSL_FLAG(std::optional<int>, worker_threads, std::nullopt,
          "Threads that decode, preprocess and postprocess (default: the number of CPU cores).");
ABSL_FLAG(std::optional<int>, cpu_inference_threads, std::nullopt,
          "Intra-op threads of each CPU forward pass (default: the number of CPU cores).");
ABSL_FLAG(std::optional<std::string>, device, std::nullopt,
          "Device of every model: auto, cpu, cuda or cuda:N (default: each model's, auto).");
ABSL_FLAG(std::optional<int64_t>, max_message_bytes, std::nullopt,
          "Largest request or answer message in bytes (default 67108864 = 64 MiB).");
ABSL_FLAG(std::optional<int64_t>, max_image_pixels, std::nullopt,
          "Largest image (width x height) accepted, read from the header before decoding "
          "(default 40000000).");
ABSL_FLAG(std::optional<std::string>, tls_cert, std::nullopt,
          "PEM certificate chain of the server; with --tls-key turns TLS on.");
ABSL_FLAG(std::optional<std::string>, tls_key, std::nullopt, "PEM private key of the server.");
ABSL_FLAG(std::optional<std::string>, tls_client_ca, std::nullopt,
          "PEM CA certificate(s) that sign client certificates; set to require mutual TLS.");
ABSL_FLAG(std::string, port_file, "",
          "Once serving, write the bound gRPC port to this file (useful with --port=0).");
ABSL_FLAG(std::string, metrics_port_file, "",
          "Once serving, write the bound metrics port to this file (useful with --metrics-port=0).");
ABSL_FLAG(bool, print_config, false,
          "Print the effective configuration (file + defaults + flags) and exit.");

namespace {

constexpr char kUsage[] = R"(serves InternImage vision models over gRPC.

Usage: internimage-server [--config=FILE] [flags]

  internimage-server                          default models on :50051, metrics on :8002
  internimage-server --config=server.pbtxt --port=50052 --metrics-port=-1
  internimage-server --tls-cert=server.pem --tls-key=server.key --tls-client-ca=ca.pem

Flags override the configuration file; flag names may be written with '-' or '_'
(--metrics-port or --metrics_port). Health (grpc.health.v1) reports NOT_SERVING until the models
are loaded and warmed up, and again as soon as SIGTERM/SIGINT starts the drain.

Exit codes: 0 drained cleanly, 1 start-up failed (port in use, TLS files, models) or a flag
            value did not parse, 2 invalid configuration (file or flags), 3 the drain grace
            period ran out, 130 a second SIGTERM/SIGINT while shutting down.)";

iis::ConfigOverrides OverridesFromFlags() {
  iis::ConfigOverrides overrides;
  overrides.host = absl::GetFlag(FLAGS_host);
  overrides.port = absl::GetFlag(FLAGS_port);
  overrides.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  overrides.drain_grace = absl::GetFlag(FLAGS_drain_grace);
  overrides.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  overrides.cpu_inference_threads = absl::GetFlag(FLAGS_cpu_inference_threads);
  overrides.device = absl::GetFlag(FLAGS_device);
  overrides.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  overrides.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  overrides.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  overrides.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  overrides.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  return overrides;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  usage.version_string = [] { return std::string("internimage-server 0.1.0\n"); };
  absl::SetFlagsUsageConfig(usage);

  std::vector<std::string> args = iis::NormalizeFlagNames(argc, argv);
  std::vector<char*> arg_pointers;
  for (std::string& arg : args) arg_pointers.push_back(arg.data());
  const std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(arg_pointers.size()), arg_pointers.data());
  if (positional.size() > 1) {
    iis::common::Log(iis::common::LogSeverity::kError,
             absl::StrCat("unexpected argument \"", positional[1],
                          "\": internimage-server takes flags only (see --help)"));
    return iis::kExitBadConfig;
  }

  absl::StatusOr<iis::ServerConfig> config =
      iis::MakeServerConfig(absl::GetFlag(FLAGS_config), OverridesFromFlags());
  if (!config.ok()) {
    iis::common::Log(iis::common::LogSeverity::kError, config.status().ToString());
    return iis::kExitBadConfig;
  }
  if (absl::GetFlag(FLAGS_print_config)) {
    std::fputs(iis::ServerConfigToText(*config).c_str(), stdout);
    return iis::kExitOk;
  }

  iis::RunServerOptions options;
  options.config = *std::move(config);
  options.create_engine = [](const iis::ServerConfig& config, iis::Metrics* metrics) {
    return iis::runtime::CreateRuntimeEngine(
        config, metrics, iis::runtime::LibTorchBackend(config.cpu_inference_threads()));
  };
  options.on_serving = [](int grpc_port, int metrics_port) {
    iis::WritePortFile(absl::GetFlag(FLAGS_port_file), grpc_port);
    iis::WritePortFile(absl::GetFlag(FLAGS_metrics_port_file), metrics_port);
  };
  return iis::RunServer(options);
}
