#include "client/cli/cli_options.h"

#include <optional>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/common/exit_codes.h"
#include "common/command_line.h"

namespace iis::client {
namespace {

namespace pb = ::internimage::serving::v1;

struct CommandName {
  const char* name;
  CliCommand command;
};
constexpr CommandName kCommands[] = {
    {"classify", CliCommand::kClassify}, {"detect", CliCommand::kDetect},
    {"segment", CliCommand::kSegment},   {"models", CliCommand::kModels},
    {"health", CliCommand::kHealth},
};

constexpr char kDescription[] = R"(Calls an internimage-serving server.

Commands:
  classify IMAGE...   top-k ImageNet classes of each image
  detect IMAGE...     instances (boxes, classes, scores, masks) of each image
  segment IMAGE...    per-pixel classes of each image (class pixel counts; --visualize draws it)
  models              the served models and their metadata
  health              grpc.health.v1 Check: exits 0 when SERVING, 4 otherwise
IMAGE may be a file or a directory (searched recursively for .jpg/.jpeg/.png/.webp/.bmp).
Options may come before, between or after the command and the images.
)";

constexpr char kFooter[] = R"(
Errors are printed on stderr with the status code name and message; processing continues with
the next image and the exit code is that of the first failure (UNAVAILABLE stops at once).

Exit codes:
)";

// The command line as given; ParseCliArgs checks it and turns it into a CliConfig.
struct CliFlags {
  std::string command;
  std::vector<std::string> inputs;
  ChannelFlags channel;
  absl::Duration deadline = absl::Seconds(30);
  RequestFlags request;
  std::optional<std::string> service;
  bool json = false;
  std::optional<std::string> visualize_dir;
};

// Refuses an empty --visualize (e.g. --visualize="$DIR" with DIR unset).
CLI::Validator OutputDirectory() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        return text.empty() ? "expected an output directory, got an empty string" : "";
      },
      "");
}

// Declares every argument of internimage-client on `app`, bound to `*flags`.
void DeclareCliArgs(CLI::App& app, CliFlags* flags) {
  using common::FlagNames;
  common::SetUpCommandLine(app, absl::StrCat(kFooter, ExitCodesHelp()));
  app.add_option("COMMAND", flags->command,
                 "classify, detect, segment, models or health (see above).")
      ->type_name("");
  app.add_option("IMAGE", flags->inputs, "Image files and directories (inference commands).")
      ->type_name("");
  AddChannelOptions(app, TargetCount::kOne, &flags->channel);
  common::AddDurationOption(app, "deadline", &flags->deadline,
                            "Deadline of each call, e.g. 500ms or 5s (default 30s).",
                            absl::Milliseconds(1), absl::Hours(1))
      ->group("Connection");
  AddRequestOptions(app, &flags->request);
  app.add_option(FlagNames("service"), flags->service,
                 "health: the service to ask about (default: the whole server).")
      ->type_name("NAME")
      ->group("Requests");
  const std::string output = "Output";
  app.add_flag(FlagNames("json"), flags->json, "One JSON document on stdout instead of tables.")
      ->group(output);
  app.add_option(FlagNames("visualize"), flags->visualize_dir,
                 "Write a PNG per image into DIR (created if needed), named "
                 "<image name>.<command>.png: labelled boxes and translucent masks, the "
                 "colour-coded class map with a legend, or the top-k labels.")
      ->check(OutputDirectory())
      ->type_name("DIR")
      ->group(output);
}

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

}  // namespace

pb::Task TaskOfCommand(CliCommand command) {
  switch (command) {
    case CliCommand::kClassify:
      return pb::TASK_CLASSIFICATION;
    case CliCommand::kDetect:
      return pb::TASK_DETECTION;
    case CliCommand::kSegment:
      return pb::TASK_SEGMENTATION;
    default:
      return pb::TASK_UNSPECIFIED;
  }
}

bool IsInferenceCommand(CliCommand command) {
  return command == CliCommand::kClassify || command == CliCommand::kDetect ||
         command == CliCommand::kSegment;
}

absl::StatusOr<CliConfig> ParseCliArgs(const std::vector<std::string>& argv) {
  CliConfig config;
  if (argv.empty()) {
    config.help = true;
    return config;
  }
  CLI::App app(kDescription, "internimage-client");
  CliFlags flags;
  DeclareCliArgs(app, &flags);
  absl::StatusOr<common::CommandLineResult> parsed = common::ParseCommandLine(app, argv);
  if (!parsed.ok()) return parsed.status();
  if (*parsed == common::CommandLineResult::kHelp) {
    config.help = true;
    return config;
  }
  const std::string& name = flags.command;
  if (name.empty()) {
    return Invalid("expected a command (classify, detect, segment, models or health), got none");
  }
  const CommandName* command = nullptr;
  for (const CommandName& candidate : kCommands) {
    if (name == candidate.name) command = &candidate;
  }
  if (command == nullptr) {
    return Invalid(absl::StrCat(
        "expected a command (classify, detect, segment, models or health), got '", name, "'"));
  }
  config.command = command->command;
  config.inputs = std::move(flags.inputs);

  if (flags.channel.targets.size() > 1) {
    return Invalid(
        "--target: expected one server, got several (internimage-loadgen drives "
        "fleets)");
  }
  if (!flags.channel.targets.empty()) config.channel.target = flags.channel.targets.front();
  if (absl::Status tls = ApplyTlsFlags(flags.channel, &config.channel); !tls.ok()) return tls;
  config.deadline = flags.deadline;
  config.json = flags.json;
  config.visualize_dir = flags.visualize_dir.value_or("");

  if (IsInferenceCommand(config.command)) {
    if (flags.service.has_value()) return Invalid("--service applies to health only");
    auto request = RequestOptionsFor(flags.request, TaskOfCommand(config.command));
    if (!request.ok()) return request.status();
    config.request = *std::move(request);
    if (config.inputs.empty()) {
      return Invalid(absl::StrCat(name,
                                  ": expected at least one image file or directory, got "
                                  "none"));
    }
    if (config.request.counts_only && !config.visualize_dir.empty()) {
      return Invalid("--visualize: needs the label map, which --counts-only leaves out");
    }
    return config;
  }
  // models and health take no image and no request option.
  if (!config.inputs.empty()) {
    return Invalid(absl::StrCat(name, ": takes no image, got '", config.inputs.front(), "'"));
  }
  if (const std::vector<std::string> given = GivenRequestOptions(flags.request); !given.empty()) {
    return Invalid(absl::StrCat("--", given.front(), " does not apply to ", name));
  }
  if (flags.visualize_dir.has_value()) {
    return Invalid(absl::StrCat("--visualize does not apply to ", name));
  }
  if (config.command == CliCommand::kModels && flags.service.has_value()) {
    return Invalid("--service applies to health only");
  }
  config.health_service = flags.service.value_or("");
  return config;
}

std::string CliHelp() {
  CLI::App app(kDescription, "internimage-client");
  CliFlags flags;
  DeclareCliArgs(app, &flags);
  return app.help();
}

}  // namespace iis::client
