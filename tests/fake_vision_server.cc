// fake_vision_server: the real front end, configuration, metrics and process life cycle
// (RunServer) over the deterministic FakeEngine (tests/fake_engine.h). Client and end-to-end
// tests start it on free ports:
//
//   build/tests/fake_vision_server --port=0 --metrics-port=0 --port-file=/tmp/p
//   --metrics-port-file=/tmp/m
//
// It writes the bound ports to the files once it is SERVING (each file holds one number and a
// newline, written to a temporary name and renamed, so a reader never sees a partial file), and
// exits 0 after SIGTERM/SIGINT and a clean drain. Models: fake_classifier (default),
// fake_classifier_b, fake_detector, fake_segmenter; see tests/fake_engine.h for their answers.
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/config/server_config.h"
#include "common/logging.h"
#include "server/frontend/run_server.h"
#include "tests/fake_engine.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 0, "gRPC port; 0 picks a free port (see --port-file).");
ABSL_FLAG(int, metrics_port, 0, "Prometheus /metrics port; 0 picks a free one, -1 turns it off.");
ABSL_FLAG(std::string, port_file, "", "Write the bound gRPC port here once serving.");
ABSL_FLAG(std::string, metrics_port_file, "", "Write the bound metrics port here once serving.");
ABSL_FLAG(absl::Duration, drain_grace, absl::Seconds(5), "Drain grace period after SIGTERM.");
ABSL_FLAG(absl::Duration, latency, absl::ZeroDuration(),
          "Simulated inference time of every request.");
ABSL_FLAG(int, max_queue_size, 16,
          "Requests accepted and unanswered beyond this: RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, worker_threads, 2, "Threads of the fake engine.");
ABSL_FLAG(int64_t, max_image_pixels, 40'000'000, "Largest image accepted (width x height).");
ABSL_FLAG(std::optional<std::string>, tls_cert, std::nullopt,
          "PEM certificate; with --tls-key: TLS.");
ABSL_FLAG(std::optional<std::string>, tls_key, std::nullopt, "PEM private key.");
ABSL_FLAG(std::optional<std::string>, tls_client_ca, std::nullopt,
          "PEM CA of client certificates; set to require mutual TLS.");


int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "the real gRPC front end over a deterministic fake engine, for tests.\n"
      "Usage: fake_vision_server [--port=0] [--port-file=FILE] [--metrics-port-file=FILE] ...");
  std::vector<std::string> args = iis::NormalizeFlagNames(argc, argv);
  std::vector<char*> arg_pointers;
  for (std::string& arg : args) arg_pointers.push_back(arg.data());
  absl::ParseCommandLine(static_cast<int>(arg_pointers.size()), arg_pointers.data());

  iis::ConfigOverrides overrides;
  overrides.host = absl::GetFlag(FLAGS_host);
  overrides.port = absl::GetFlag(FLAGS_port);
  overrides.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  overrides.drain_grace = absl::GetFlag(FLAGS_drain_grace);
  overrides.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  overrides.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  overrides.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  overrides.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  absl::StatusOr<iis::ServerConfig> config = iis::MakeServerConfig("", overrides);
  if (!config.ok()) {
    iis::common::Log(iis::common::LogSeverity::kError, config.status().ToString());
    return iis::kExitBadConfig;
  }

  iis::FakeEngineOptions engine_options;
  engine_options.latency = absl::GetFlag(FLAGS_latency);
  engine_options.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  engine_options.worker_threads = absl::GetFlag(FLAGS_worker_threads);

  iis::RunServerOptions options;
  options.config = *std::move(config);
  options.create_engine =
      [engine_options](const iis::ServerConfig&,
                       iis::Metrics* metrics) -> absl::StatusOr<std::unique_ptr<iis::Engine>> {
    iis::FakeEngineOptions with_metrics = engine_options;
    with_metrics.metrics = metrics;
    return std::make_unique<iis::FakeEngine>(with_metrics);
  };
  options.on_serving = [](int grpc_port, int metrics_port) {
    iis::WritePortFile(absl::GetFlag(FLAGS_port_file), grpc_port);
    iis::WritePortFile(absl::GetFlag(FLAGS_metrics_port_file), metrics_port);
  };
  return iis::RunServer(options);
}
