// internimage-loadgen's command line: parsing, validation and --help.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/common/channel.h"
#include "client/common/images.h"
#include "client/common/requests.h"
#include "client/loadgen/runner.h"
#include "client/loadgen/workload.h"

namespace iis::client {

// Upper bounds that keep every run finite and the generator's memory bounded.
inline constexpr absl::Duration kMaxStepDuration = absl::Hours(1);
inline constexpr absl::Duration kMaxWarmup = absl::Minutes(10);
inline constexpr absl::Duration kMaxPlannedTime = absl::Hours(4);  // all steps together
inline constexpr int64_t kMaxRequestsPerStep = 100'000'000;
inline constexpr int kMaxConcurrency = 10'000;
inline constexpr double kMaxRate = 1'000'000;
inline constexpr int kMaxSteps = 32;
inline constexpr int kMaxConnections = 64;
inline constexpr int kMaxImages = 10'000;

struct LoadgenConfig {
  std::vector<std::string> targets;  // at least one
  ChannelOptions channel;            // TLS settings; the target is set per channel
  int connections = 1;               // channels (connections) per target
  absl::Duration connect_timeout = absl::Seconds(10);
  LoadRpc rpc = LoadRpc::kClassify;
  RequestOptions request;
  std::vector<std::string> image_paths;  // files and directories
  std::vector<ImageSize> synthetic;      // generated JPEGs
  RunOptions run;                        // progress is decided by main() (isatty)
  bool no_progress = false;
  std::vector<LoadStep> steps;  // one per --concurrency or --rate value, in the given order
  std::string json_path;
  std::string csv_path;
  std::string plot_path;
  bool help = false;
};

// Parses internimage-loadgen's arguments (argv without the program name): options
// (`--name value` or `--name=value`, see common/command_line.h) around image files and
// directories. Fails with INVALID_ARGUMENT and a message naming the option on any bad or
// inconsistent input, including a run that would not end by itself (neither --duration nor
// --requests) or exceeds the caps above. With -h/--help, returns a config with only `help` set.
absl::StatusOr<LoadgenConfig> ParseLoadgenArgs(const std::vector<std::string>& args);

// Returns the --help text, generated from the option declarations: what the tool does, every
// option (load shape, length, what and where to send, outputs), and the exit codes.
std::string LoadgenHelp();

}  // namespace iis::client
