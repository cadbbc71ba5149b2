// internimage-client's command line: parsing, validation and --help.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/common/channel.h"
#include "client/common/requests.h"
#include "internimage/serving/v1/vision.pb.h"

namespace iis::client {

enum class CliCommand { kClassify, kDetect, kSegment, kModels, kHealth };

struct CliConfig {
  CliCommand command = CliCommand::kClassify;
  ChannelOptions channel;
  absl::Duration deadline = absl::Seconds(30);  // per RPC
  RequestOptions request;                       // classify / detect / segment
  std::vector<std::string> inputs;              // image files and directories, as given
  bool json = false;                            // one JSON document on stdout instead of tables
  std::string visualize_dir;                    // empty: no pictures
  std::string health_service;                   // health: the service name to ask about
  bool help = false;
};

// Returns the task of an inference command (TASK_CLASSIFICATION for classify, TASK_DETECTION for
// detect, TASK_SEGMENTATION for segment), TASK_UNSPECIFIED for models and health.
::internimage::serving::v1::Task TaskOfCommand(CliCommand command);
// Returns true for classify, detect and segment.
bool IsInferenceCommand(CliCommand command);

// Parses internimage-client's arguments (argv without the program name): a command
// (classify, detect, segment, models, health) as the first positional argument, then images or
// directories, with options anywhere around them (`--name value` or `--name=value`, see
// common/command_line.h). Fails with INVALID_ARGUMENT and a message naming the argument on
// anything wrong or inconsistent (unknown command or option, a malformed or out-of-range value,
// several targets, a missing image, an option of another command, --counts-only with
// --visualize). With -h/--help (or no arguments), returns a config with only `help` set.
absl::StatusOr<CliConfig> ParseCliArgs(const std::vector<std::string>& args);

// Returns the --help text, generated from the option declarations: what the tool does, its
// commands and what IMAGE may be, every option, and the exit codes.
std::string CliHelp();

}  // namespace iis::client
