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
#include "tests/fake_engine.h"

int main(int argc, char** argv) {
  using iis::common::FlagNames;
  using iis::common::IntegerIn;
  CLI::App app("The real gRPC front end over a deterministic fake engine, for tests.",
               "fake_vision_server");
  iis::common::SetUpCommandLine(app, "");
  // The server's own flags, with defaults for tests: loopback, free ports, a short drain.
  iis::ServerFlags flags;
  flags.overrides.host = "127.0.0.1";
  flags.overrides.port = 0;
  flags.overrides.metrics_port = 0;
  flags.overrides.drain_grace = absl::Seconds(5);
  iis::AddServerFlags(app, &flags);
  iis::FakeEngineOptions engine_options;
  iis::common::AddDurationOption(app, "latency", &engine_options.latency,
                                 "Simulated inference time of every request.", absl::ZeroDuration(),
                                 absl::Hours(1));
  app.add_option(FlagNames("max-queue-size"), engine_options.max_queue_size,
                 "Requests accepted and unanswered beyond this: RESOURCE_EXHAUSTED.")
      ->check(IntegerIn(1, 1'000'000));
  app.add_option(FlagNames("engine-threads"), engine_options.worker_threads,
                 "Threads of the fake engine.")
      ->check(IntegerIn(1, 1024));
  absl::StatusOr<iis::common::CommandLineResult> parsed =
      iis::common::ParseCommandLine(app, iis::common::ArgsOf(argc, argv));
  if (!parsed.ok()) {
    std::fprintf(stderr, "fake_vision_server: %s\n",
                 std::string(parsed.status().message()).c_str());
    return iis::kExitBadConfig;
  }
  if (*parsed == iis::common::CommandLineResult::kHelp) {
    std::fputs(app.help().c_str(), stdout);
    return iis::kExitOk;
  }

  absl::StatusOr<iis::ServerConfig> config = iis::MakeServerConfig(flags.config, flags.overrides);
  if (!config.ok()) {
    iis::common::Log(iis::common::LogSeverity::kError, config.status().ToString());
    return iis::kExitBadConfig;
  }

  iis::RunServerOptions options;
  options.config = *std::move(config);
  options.create_engine =
      [engine_options](const iis::ServerConfig&,
                       iis::Metrics* metrics) -> absl::StatusOr<std::unique_ptr<iis::Engine>> {
    iis::FakeEngineOptions with_metrics = engine_options;
    with_metrics.metrics = metrics;
    return std::make_unique<iis::FakeEngine>(with_metrics);
  };
  options.on_serving = [&flags](int grpc_port, int metrics_port) {
    iis::WritePortFile(flags.port_file, grpc_port);
    iis::WritePortFile(flags.metrics_port_file, metrics_port);
  };
  return iis::RunServer(options);
}
