#include "client/loadgen/loadgen_options.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/common/exit_codes.h"
#include "client/loadgen/arrivals.h"
#include "common/command_line.h"

namespace iis::client {
namespace {

constexpr char kDescription[] =
    R"(Load-tests internimage-serving and reports throughput, latency percentiles from a
high-resolution histogram (min, mean, p50, p90, p95, p99, p99.9, max; <= 0.05% error), errors by
status code and the server's own timing breakdown.

IMAGE may be a file or a directory (searched recursively for .jpg/.jpeg/.png/.webp/.bmp); the
image RPCs send a synthetic 640x480 JPEG when neither images nor --synthetic are given.
)";

constexpr char kFooter[] = R"(
Before the load starts every target is connected and asked for its models (ListModels), so an
unreachable target or an unknown model fails at once. A table goes to stdout always.

Exit codes:
)";

// The command line as given; ParseLoadgenArgs checks it and turns it into a LoadgenConfig.
struct LoadgenFlags {
  std::vector<int> concurrency;
  std::vector<double> rates;
  std::optional<ArrivalProcess> arrivals;
  std::optional<int64_t> seed;
  std::optional<int> max_outstanding;
  std::optional<absl::Duration> duration;
  std::optional<int64_t> requests;
  absl::Duration warmup = absl::ZeroDuration();
  absl::Duration deadline = absl::Seconds(30);
  LoadRpc rpc = LoadRpc::kClassify;
  std::vector<ImageSize> synthetic;
  RequestFlags request;
  std::vector<std::string> image_paths;
  ChannelFlags channel;
  int connections = 1;
  absl::Duration connect_timeout = absl::Seconds(10);
  std::optional<std::string> json_path;
  std::optional<std::string> csv_path;
  std::optional<std::string> plot_path;
  bool no_progress = false;
};

// Declares --<name> with a value read by `parse` (which names the option in its errors) into
// `*out` (a T, or a std::optional<T> set only when the option is given).
template <typename T, typename Out>
CLI::Option* AddParsedOption(CLI::App& app, absl::string_view name, std::string description,
                             absl::StatusOr<T> (*parse)(absl::string_view flag,
                                                        absl::string_view text),
                             Out* out) {
  const std::string flag = absl::StrCat("--", name);
  return app.add_option_function<std::string>(
      common::FlagNames(name),
      [flag, parse, out](const std::string& text) {
        absl::StatusOr<T> value = parse(flag, text);
        if (!value.ok()) throw CLI::ValidationError(std::string(value.status().message()));
        *out = *std::move(value);
      },
      std::move(description));
}

// Refuses an empty output path (e.g. --json="$FILE" with FILE unset).
CLI::Validator OutputFile() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        return text.empty() ? "expected a file path, got an empty string" : "";
      },
      "");
}

// Accepts a file name ending in .png (the only format --plot writes).
CLI::Validator PngFile() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        return absl::EndsWithIgnoreCase(text, ".png")
                   ? ""
                   : absl::StrCat("expected a file name ending in .png, got '", text, "'");
      },
      "");
}

// Declares every argument of internimage-loadgen on `app`, bound to `*flags`.
void DeclareLoadgenArgs(CLI::App& app, LoadgenFlags* flags) {
  using common::AddDurationOption;
  using common::FlagNames;
  using common::IntegerIn;
  using common::NumberIn;
  common::SetUpCommandLine(app, absl::StrCat(kFooter, ExitCodesHelp()));
  app.add_option("IMAGE", flags->image_paths, "Image files and directories.")->type_name("");

  const std::string shape = "Load shape (one step per value; a list runs a sweep)";
  common::AddListOption(app, "concurrency", "N[,N...]",
                        "Closed loop: N calls always in flight (default 1).",
                        IntegerIn(1, kMaxConcurrency), &flags->concurrency)
      ->group(shape);
  common::AddListOption(app, "rate", "R[,R...]",
                        "Open loop: R calls per second; latency is measured from the INTENDED send "
                        "time, so the generator's own delays are never hidden.",
                        NumberIn(0.001, kMaxRate), &flags->rates)
      ->group(shape);
  AddParsedOption(app, "arrivals", "Open loop: poisson (default) or constant inter-arrival times.",
                  ParseArrivalProcess, &flags->arrivals)
      ->type_name("KIND")
      ->group(shape);
  app.add_option(FlagNames("seed"), flags->seed,
                 "Open loop: seed of the Poisson arrivals (default 1).")
      ->check(IntegerIn(0, std::numeric_limits<int64_t>::max()))
      ->type_name("N")
      ->group(shape);
  app.add_option(FlagNames("max-outstanding"), flags->max_outstanding,
                 "Open loop: cap on calls in flight (default 10000).")
      ->check(IntegerIn(1, 100000))
      ->type_name("N")
      ->group(shape);

  const std::string length =
      absl::StrCat("Length (every run must end by itself: --duration, --requests or both; at most ",
                   absl::FormatDuration(kMaxPlannedTime), " in all)");
  AddDurationOption(app, "duration", &flags->duration,
                    absl::StrCat("Measured time per step, e.g. 20s (at most ",
                                 absl::FormatDuration(kMaxStepDuration), ")."),
                    absl::Milliseconds(1), kMaxStepDuration)
      ->group(length);
  app.add_option(FlagNames("requests"), flags->requests, "Measured calls per step.")
      ->check(IntegerIn(1, kMaxRequestsPerStep))
      ->type_name("N")
      ->group(length);
  AddDurationOption(app, "warmup", &flags->warmup,
                    absl::StrCat("Time before each step's measurement, in no figure (default 0s, "
                                 "at most ",
                                 absl::FormatDuration(kMaxWarmup), ")."),
                    absl::ZeroDuration(), kMaxWarmup)
      ->group(length);
  AddDurationOption(app, "deadline", &flags->deadline, "Deadline of each call (default 30s).",
                    absl::Milliseconds(1), absl::Minutes(10))
      ->group(length);

  AddParsedOption(app, "rpc",
                  "classify (default), detect, segment, getmodel or health (getmodel and health "
                  "are cheap: they measure the generator and the transport).",
                  ParseLoadRpc, &flags->rpc)
      ->type_name("RPC")
      ->group("Requests");
  common::AddListOption(app, "synthetic", "WxH[,WxH...]",
                        "Generated JPEGs of these sizes (default 640x480 when no image is given).",
                        [flags](absl::string_view item) -> absl::Status {
                          absl::StatusOr<ImageSize> size = ParseImageSize("--synthetic", item);
                          if (!size.ok()) return size.status();
                          flags->synthetic.push_back(*size);
                          return absl::OkStatus();
                        })
      ->group("Requests");
  AddRequestOptions(app, &flags->request);

  AddChannelOptions(app, TargetCount::kSeveral, &flags->channel);
  app.add_option(FlagNames("connections"), flags->connections,
                 "Connections per target (default 1).")
      ->check(IntegerIn(1, kMaxConnections))
      ->type_name("N")
      ->group("Connection");
  AddDurationOption(app, "connect-timeout", &flags->connect_timeout,
                    "How long to wait for each target before giving up (default 10s).",
                    absl::Milliseconds(1), absl::Minutes(5))
      ->group("Connection");

  const std::string output = "Output (a table on stdout always)";
  app.add_option(FlagNames("json"), flags->json_path,
                 "One document: run settings and a \"steps\" array, one entry per step, with "
                 "requests_ok, requests_failed, throughput_rps, latency_ms {min, mean, p50, p90, "
                 "p95, p99, p999, max}, errors by code, server_timing_ms, per-target counts and "
                 "the generator's CPU use.")
      ->check(OutputFile())
      ->type_name("FILE")
      ->group(output);
  app.add_option(FlagNames("csv"), flags->csv_path, "One row per step.")
      ->check(OutputFile())
      ->type_name("FILE")
      ->group(output);
  app.add_option(FlagNames("plot"), flags->plot_path,
                 "p50/p90/p99 latency and throughput against concurrency or rate.")
      ->check(OutputFile())
      ->check(PngFile())
      ->type_name("FILE.png")
      ->group(output);
  app.add_flag(FlagNames("no-progress"), flags->no_progress,
               "No live progress line (it is shown only when stderr is a terminal).")
      ->group(output);
}

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

absl::Status CheckSteps(const LoadgenFlags& flags, LoadgenConfig* config) {
  const bool open = !flags.rates.empty();
  if (open && !flags.concurrency.empty()) {
    return Invalid(
        "--concurrency and --rate: expected one of them (closed or open loop), got both");
  }
  if (!open) {
    const std::pair<const char*, bool> open_only[] = {
        {"arrivals", flags.arrivals.has_value()},
        {"max-outstanding", flags.max_outstanding.has_value()},
        {"seed", flags.seed.has_value()}};
    for (const auto& [option, given] : open_only) {
      if (given) {
        return Invalid(absl::StrCat("--", option, " applies to open-loop runs (--rate) only"));
      }
    }
  }
  if (open) {
    for (double rate : flags.rates) config->steps.push_back(LoadStep{0, rate});
    config->run.arrivals = flags.arrivals.value_or(ArrivalProcess::kPoisson);
    config->run.seed = static_cast<uint64_t>(flags.seed.value_or(1));
    config->run.max_outstanding = flags.max_outstanding.value_or(10000);
  } else {
    for (int concurrency : flags.concurrency) config->steps.push_back(LoadStep{concurrency, 0});
    if (config->steps.empty()) config->steps.push_back(LoadStep{1, 0});
  }
  if (static_cast<int>(config->steps.size()) > kMaxSteps) {
    return Invalid(absl::StrCat("--", open ? "rate" : "concurrency", ": expected at most ",
                                kMaxSteps, " steps, got ", config->steps.size()));
  }
  return absl::OkStatus();
}

absl::Status CheckBounds(const LoadgenFlags& flags, LoadgenConfig* config) {
  if (!flags.duration.has_value() && !flags.requests.has_value()) {
    return Invalid("expected --duration (e.g. 20s) or --requests N: every run must end by itself");
  }
  config->run.warmup = flags.warmup;
  config->run.duration = flags.duration.value_or(absl::ZeroDuration());
  config->run.requests = flags.requests.value_or(0);
  config->run.deadline = flags.deadline;
  // A step with only a request budget is bounded by that budget (and the call deadline).
  const absl::Duration step_time = config->run.warmup + config->run.duration;
  if (flags.duration.has_value() &&
      step_time * static_cast<double>(config->steps.size()) > kMaxPlannedTime) {
    return Invalid(absl::StrCat("--duration and --warmup: ", config->steps.size(), " steps of ",
                                absl::FormatDuration(step_time), " exceed the ",
                                absl::FormatDuration(kMaxPlannedTime), " a run may last"));
  }
  return absl::OkStatus();
}

absl::Status CheckInputs(const LoadgenFlags& flags, LoadgenConfig* config) {
  config->image_paths = flags.image_paths;
  config->synthetic = flags.synthetic;
  if (!RpcTakesImages(config->rpc)) {
    if (!config->image_paths.empty() || !config->synthetic.empty()) {
      return Invalid(
          absl::StrCat("--rpc ", LoadRpcName(config->rpc), " sends no image, got image arguments"));
    }
    for (const std::string& option : GivenRequestOptions(flags.request)) {
      if (option == "model" && config->rpc == LoadRpc::kGetModel) continue;
      return Invalid(
          absl::StrCat("--", option, " does not apply to --rpc ", LoadRpcName(config->rpc)));
    }
    config->request.model = flags.request.model.value_or("");
    return absl::OkStatus();
  }
  auto request = RequestOptionsFor(flags.request, TaskOfRpc(config->rpc));
  if (!request.ok()) return request.status();
  config->request = *std::move(request);
  if (config->image_paths.empty() && config->synthetic.empty()) {
    config->synthetic.push_back(ImageSize{640, 480});
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LoadgenConfig> ParseLoadgenArgs(const std::vector<std::string>& argv) {
  CLI::App app(kDescription, "internimage-loadgen");
  LoadgenFlags flags;
  DeclareLoadgenArgs(app, &flags);
  absl::StatusOr<common::CommandLineResult> parsed = common::ParseCommandLine(app, argv);
  if (!parsed.ok()) return parsed.status();
  LoadgenConfig config;
  if (*parsed == common::CommandLineResult::kHelp) {
    config.help = true;
    return config;
  }
  config.targets = flags.channel.targets;
  if (config.targets.empty()) config.targets.emplace_back(kDefaultTarget);
  if (absl::Status tls = ApplyTlsFlags(flags.channel, &config.channel); !tls.ok()) return tls;
  config.connections = flags.connections;
  config.connect_timeout = flags.connect_timeout;
  config.rpc = flags.rpc;
  for (auto* check : {CheckSteps, CheckBounds, CheckInputs}) {
    if (absl::Status status = check(flags, &config); !status.ok()) return status;
  }
  config.json_path = flags.json_path.value_or("");
  config.csv_path = flags.csv_path.value_or("");
  config.plot_path = flags.plot_path.value_or("");
  config.no_progress = flags.no_progress;
  return config;
}

std::string LoadgenHelp() {
  CLI::App app(kDescription, "internimage-loadgen");
  LoadgenFlags flags;
  DeclareLoadgenArgs(app, &flags);
  return app.help();
}

}  // namespace iis::client
