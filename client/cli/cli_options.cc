#include "client/cli/cli_options.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/common/args.h"
#include "client/common/exit_codes.h"

namespace iis::client {
namespace {

struct CommandName {
  const char* name;
  CliCommand command;
};
constexpr CommandName kCommands[] = {
    {"classify", CliCommand::kClassify}, {"detect", CliCommand::kDetect},
    {"segment", CliCommand::kSegment},   {"models", CliCommand::kModels},
    {"health", CliCommand::kHealth},
};

std::vector<FlagSpec> CliFlagSpecs() {
  std::vector<FlagSpec> specs = ChannelFlagSpecs();
  for (FlagSpec& spec : RequestFlagSpecs()) specs.push_back(std::move(spec));
  specs.push_back({"help", false});
  specs.push_back({"deadline", true});
  specs.push_back({"json", false});
  specs.push_back({"visualize", true});
  specs.push_back({"service", true});
  return specs;
}

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

}  // namespace

VisionTask TaskOfCommand(CliCommand command) {
  switch (command) {
    case CliCommand::kDetect:
      return VisionTask::kDetect;
    case CliCommand::kSegment:
      return VisionTask::kSegment;
    default:
      return VisionTask::kClassify;
  }
}

bool IsInferenceCommand(CliCommand command) {
  return command == CliCommand::kClassify || command == CliCommand::kDetect ||
         command == CliCommand::kSegment;
}

absl::StatusOr<CliConfig> ParseCliArgs(const std::vector<std::string>& argv) {
  auto parsed = ParsedArgs::Parse(argv, CliFlagSpecs());
  if (!parsed.ok()) return parsed.status();
  const ParsedArgs& args = *parsed;
  CliConfig config;
  if (args.Has("help") || argv.empty()) {
    config.help = true;
    return config;
  }
  if (args.positional().empty()) {
    return Invalid("expected a command (classify, detect, segment, models or health), got none");
  }
  const std::string& name = args.positional().front();
  const CommandName* command = nullptr;
  for (const CommandName& candidate : kCommands) {
    if (name == candidate.name) command = &candidate;
  }
  if (command == nullptr) {
    return Invalid(absl::StrCat(
        "expected a command (classify, detect, segment, models or health), got '", name, "'"));
  }
  config.command = command->command;
  config.inputs.assign(args.positional().begin() + 1, args.positional().end());

  if (args.Values("target").size() > 1) {
    return Invalid(
        "--target: expected one server, got several (internimage-loadgen drives "
        "fleets)");
  }
  config.channel.target = args.GetString("target", "localhost:50051");
  if (absl::Status valid = ValidateTarget(config.channel.target); !valid.ok()) return valid;
  if (absl::Status tls = ApplyTlsFlags(args, &config.channel); !tls.ok()) return tls;
  auto deadline =
      args.GetDuration("deadline", absl::Seconds(30), absl::Milliseconds(1), absl::Hours(1));
  if (!deadline.ok()) return deadline.status();
  config.deadline = *deadline;
  config.json = args.Has("json");
  config.visualize_dir = args.GetString("visualize", "");
  if (args.Has("visualize") && config.visualize_dir.empty()) {
    return Invalid("--visualize: expected an output directory, got an empty string");
  }

  if (IsInferenceCommand(config.command)) {
    if (args.Has("service")) return Invalid("--service applies to health only");
    auto request = ParseRequestFlags(args, TaskOfCommand(config.command));
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
  for (const FlagSpec& spec : RequestFlagSpecs()) {
    if (args.Has(spec.name)) {
      return Invalid(absl::StrCat("--", spec.name, " does not apply to ", name));
    }
  }
  if (args.Has("visualize")) return Invalid(absl::StrCat("--visualize does not apply to ", name));
  if (config.command == CliCommand::kModels && args.Has("service")) {
    return Invalid("--service applies to health only");
  }
  config.health_service = args.GetString("service", "");
  return config;
}

std::string CliHelp() {
  return absl::StrCat(R"(Usage: internimage-client COMMAND [OPTIONS] [IMAGE|DIR ...]

Calls an internimage-serving server.

Commands:
  classify IMAGE...   top-k ImageNet classes of each image
  detect IMAGE...     instances (boxes, classes, scores, masks) of each image
  segment IMAGE...    per-pixel classes of each image (class pixel counts; --visualize draws it)
  models              the served models and their metadata
  health              grpc.health.v1 Check: exits 0 when SERVING, 4 otherwise
IMAGE may be a file or a directory (searched recursively for .jpg/.jpeg/.png/.webp/.bmp).

Connection:
  --target HOST:PORT       server address (default localhost:50051)
  --deadline D             deadline of each call, e.g. 500ms, 5s (default 30s)
  --tls                    use TLS (implied by the certificate options)
  --ca-cert FILE           PEM roots that verify the server (default: the system's)
  --client-cert FILE       PEM client certificate chain (mutual TLS; needs --client-key)
  --client-key FILE        PEM client private key
  --server-name NAME       name to verify in the server certificate instead of the host

Requests:
  --model NAME             served model (default: the server's default for the task)
  --raw                    send decoded RGB pixels instead of the encoded file
  --tensor N               send a ready network input instead: float32 3xNxN, the image resized
                           and normalised here (the server then skips its own preprocessing)
  --top-k N                classify: how many classes (default: the server's, 5)
  --score-threshold F      detect: keep scores strictly above F, in [0, 1)
  --max-detections N       detect: at most N instances (0: the model's limit)
  --no-masks               detect: boxes only
  --counts-only            segment: class pixel counts only, no label map
  --service NAME           health: the service to ask about (default: the whole server)

Output:
  --json                   one JSON document on stdout instead of tables
  --visualize DIR          write a PNG per image into DIR (created if needed), named
                           <image name>.<command>.png: labelled boxes and translucent masks,
                           the colour-coded class map with a legend, or the top-k labels

Errors are printed on stderr with the status code name and message; processing continues with
the next image and the exit code is that of the first failure (UNAVAILABLE stops at once).

Exit codes:
)",
                      ExitCodesHelp());
}

}  // namespace iis::client
