// internimage-loadgen: load generator for internimage-serving (see --help).
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "client/common/channel.h"
#include "client/common/exit_codes.h"
#include "client/common/images.h"
#include "client/loadgen/loadgen_options.h"
#include "client/loadgen/plot.h"
#include "client/loadgen/report.h"
#include "client/loadgen/runner.h"
#include "client/loadgen/workload.h"
#include "common/command_line.h"
#include "common/file_io.h"

namespace iis::client {
namespace {

std::atomic<bool> g_interrupted{false};

void OnInterrupt(int) { g_interrupted.store(true); }

int Fail(int code, absl::string_view message) {
  std::fprintf(stderr, "internimage-loadgen: %.*s\n", static_cast<int>(message.size()),
               message.data());
  return code;
}

// Total bytes of image files a run may load into memory.
constexpr int64_t kMaxImageBytes = int64_t{2} << 30;

absl::StatusOr<std::vector<InputImage>> LoadImages(const LoadgenConfig& config) {
  std::vector<InputImage> images;
  if (!config.image_paths.empty()) {
    auto files = ExpandImagePaths(config.image_paths);
    if (!files.ok()) return files.status();
    if (static_cast<int>(files->size()) > kMaxImages) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected at most ", kMaxImages, " images, got ", files->size(), " files"));
    }
    int64_t total = 0;
    for (const std::string& file : *files) {
      auto bytes = common::ReadFile("image", file);
      if (!bytes.ok()) return bytes.status();
      total += static_cast<int64_t>(bytes->size());
      if (total > kMaxImageBytes) {
        return absl::InvalidArgumentError("the images exceed 2 GiB together; pass fewer");
      }
      images.push_back(InputImage{file, *std::move(bytes)});
    }
  }
  for (size_t i = 0; i < config.synthetic.size(); ++i) {
    const ImageSize& size = config.synthetic[i];
    images.push_back(InputImage{absl::StrFormat("synthetic %dx%d", size.width, size.height),
                                MakeSyntheticJpeg(size.width, size.height, i + 1)});
  }
  return images;
}

int ExitCodeFor(const absl::Status& status) {
  return ExitCodeForRpc(static_cast<grpc::StatusCode>(status.code()));
}

int Main(int argc, char** argv) {
  auto config_or = ParseLoadgenArgs(common::ArgsOf(argc, argv));
  if (!config_or.ok()) {
    return Fail(kExitUsage, absl::StrCat(config_or.status().message(), " (see --help)"));
  }
  LoadgenConfig config = *std::move(config_or);
  if (config.help) {
    std::fputs(LoadgenHelp().c_str(), stdout);
    return kExitOk;
  }

  // Output files are created now, so a wrong path fails before the run rather than after it.
  const std::pair<const char*, const std::string*> outputs[] = {
      {"--json", &config.json_path}, {"--csv", &config.csv_path}, {"--plot", &config.plot_path}};
  for (const auto& [option, path] : outputs) {
    if (path->empty()) continue;
    if (absl::Status created = common::WriteFile(*path, ""); !created.ok()) {
      return Fail(kExitIo, absl::StrCat(option, ": ", created.message()));
    }
  }
  auto images = LoadImages(config);
  if (!images.ok()) return Fail(kExitIo, images.status().message());

  std::vector<std::shared_ptr<grpc::Channel>> first_channels;
  std::vector<Endpoint> endpoints;
  for (size_t t = 0; t < config.targets.size(); ++t) {
    for (int c = 0; c < config.connections; ++c) {
      ChannelOptions options = config.channel;
      options.target = config.targets[t];
      options.round_robin = true;
      options.connection_id = static_cast<int>(t * config.connections + c + 1);
      auto channel = CreateChannel(options);
      if (!channel.ok()) return Fail(kExitIo, channel.status().message());
      if (c == 0) first_channels.push_back(*channel);
      endpoints.push_back(Endpoint{*channel, static_cast<int>(t)});
    }
  }
  if (absl::Status ready = PreflightTargets(first_channels, config.targets, config.rpc,
                                            config.connect_timeout, &config.request.model);
      !ready.ok()) {
    return Fail(ExitCodeFor(ready), ready.message());
  }
  auto workload = Workload::Create(config.rpc, config.request, *images);
  if (!workload.ok()) return Fail(kExitIo, workload.status().message());

  // abseil's debug-mode deadlock detection keeps a lock graph on every Mutex operation (gRPC's
  // included), a few percent of the generator's CPU; the loadgen has no use for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::signal(SIGINT, OnInterrupt);
  RunOptions run = config.run;
  run.progress = !config.no_progress && isatty(STDERR_FILENO);
  run.interrupt = &g_interrupted;
  LoadRunner runner(endpoints, static_cast<int>(config.targets.size()), *workload, run);
  std::vector<StepResult> results;
  for (const LoadStep& step : config.steps) {
    results.push_back(runner.Run(step));
    if (g_interrupted.load()) break;
  }

  RunSummary summary;
  summary.rpc = std::string(LoadRpcName(config.rpc));
  summary.model = config.request.model;
  summary.targets = config.targets;
  summary.connections = config.connections;
  summary.open_loop = config.steps.front().rate > 0;
  summary.arrivals = config.run.arrivals;
  summary.warmup = config.run.warmup;
  summary.duration = config.run.duration;
  summary.requests = config.run.requests;
  summary.images = static_cast<int>(workload->payload_count());
  summary.mean_request_bytes = workload->mean_payload_bytes();
  std::fputs(FormatReportTable(summary, results).c_str(), stdout);
  std::fflush(stdout);

  int exit_code = kExitOk;
  auto write = [&exit_code](const std::string& path, const std::string& data) {
    if (path.empty()) return;
    if (absl::Status status = common::WriteFile(path, data); !status.ok()) {
      exit_code = Fail(kExitIo, status.message());
    }
  };
  write(config.json_path, FormatReportJson(summary, results));
  write(config.csv_path, FormatReportCsv(summary, results));
  if (!config.plot_path.empty()) {
    if (absl::Status status = WritePlot(config.plot_path, summary, results); !status.ok()) {
      exit_code = Fail(kExitIo, status.message());
    }
  }
  if (exit_code != kExitOk) return exit_code;
  for (const StepResult& result : results) {
    if (result.failed > 0) return kExitRequestErrors;
  }
  return kExitOk;
}

}  // namespace
}  // namespace iis::client

int main(int argc, char** argv) { return iis::client::Main(argc, argv); }
