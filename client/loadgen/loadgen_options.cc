#include "client/loadgen/loadgen_options.h"

#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/common/args.h"
#include "client/common/exit_codes.h"

namespace iis::client {
namespace {

std::vector<FlagSpec> LoadgenFlagSpecs() {
  std::vector<FlagSpec> specs = ChannelFlagSpecs();
  for (FlagSpec& spec : RequestFlagSpecs()) specs.push_back(std::move(spec));
  const std::vector<FlagSpec> own = {{"help", false},
                                     {"rpc", true},
                                     {"concurrency", true, true},
                                     {"rate", true, true},
                                     {"arrivals", true},
                                     {"seed", true},
                                     {"warmup", true},
                                     {"duration", true},
                                     {"requests", true},
                                     {"deadline", true},
                                     {"max-outstanding", true},
                                     {"connections", true},
                                     {"connect-timeout", true},
                                     {"synthetic", true, true},
                                     {"json", true},
                                     {"csv", true},
                                     {"plot", true},
                                     {"no-progress", false}};
  specs.insert(specs.end(), own.begin(), own.end());
  return specs;
}

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

absl::Status ParseSteps(const ParsedArgs& args, LoadgenConfig* config) {
  const bool closed = args.Has("concurrency");
  const bool open = args.Has("rate");
  if (closed && open) {
    return Invalid(
        "--concurrency and --rate: expected one of them (closed or open loop), got both");
  }
  if (!open) {
    for (const char* option : {"arrivals", "max-outstanding", "seed"}) {
      if (args.Has(option)) {
        return Invalid(absl::StrCat("--", option, " applies to open-loop runs (--rate) only"));
      }
    }
  }
  if (open) {
    auto rates = SplitListValues("--rate", args.Values("rate"));
    if (!rates.ok()) return rates.status();
    for (const std::string& text : *rates) {
      auto rate = ParseDoubleValue("--rate", text, 0.001, kMaxRate);
      if (!rate.ok()) return rate.status();
      config->steps.push_back(LoadStep{0, *rate});
    }
    auto arrivals = ParseArrivalProcess("--arrivals", args.GetString("arrivals", "poisson"));
    if (!arrivals.ok()) return arrivals.status();
    config->run.arrivals = *arrivals;
    auto seed = args.GetInt("seed", 1, 0, std::numeric_limits<int64_t>::max());
    if (!seed.ok()) return seed.status();
    config->run.seed = static_cast<uint64_t>(*seed);
    auto max_outstanding = args.GetInt("max-outstanding", 10000, 1, 100000);
    if (!max_outstanding.ok()) return max_outstanding.status();
    config->run.max_outstanding = static_cast<int>(*max_outstanding);
  } else {
    auto levels = SplitListValues("--concurrency", args.Values("concurrency"));
    if (!levels.ok()) return levels.status();
    if (levels->empty()) levels->push_back("1");
    for (const std::string& text : *levels) {
      auto concurrency = ParseIntValue("--concurrency", text, 1, kMaxConcurrency);
      if (!concurrency.ok()) return concurrency.status();
      config->steps.push_back(LoadStep{static_cast<int>(*concurrency), 0});
    }
  }
  if (static_cast<int>(config->steps.size()) > kMaxSteps) {
    return Invalid(absl::StrCat("--", open ? "rate" : "concurrency", ": expected at most ",
                                kMaxSteps, " steps, got ", config->steps.size()));
  }
  return absl::OkStatus();
}

absl::Status ParseBounds(const ParsedArgs& args, LoadgenConfig* config) {
  auto warmup = args.GetDuration("warmup", absl::ZeroDuration(), absl::ZeroDuration(), kMaxWarmup);
  if (!warmup.ok()) return warmup.status();
  auto duration =
      args.GetDuration("duration", absl::ZeroDuration(), absl::Milliseconds(1), kMaxStepDuration);
  if (!duration.ok()) return duration.status();
  auto requests = args.GetInt("requests", 0, 1, kMaxRequestsPerStep);
  if (!requests.ok()) return requests.status();
  if (!args.Has("duration") && !args.Has("requests")) {
    return Invalid("expected --duration (e.g. 20s) or --requests N: every run must end by itself");
  }
  config->run.warmup = *warmup;
  config->run.duration = *duration;
  config->run.requests = *requests;
  // A step with only a request budget is bounded by that budget (and the call deadline).
  const absl::Duration step_time = *warmup + *duration;
  if (args.Has("duration") &&
      step_time * static_cast<double>(config->steps.size()) > kMaxPlannedTime) {
    return Invalid(absl::StrCat("--duration and --warmup: ", config->steps.size(), " steps of ",
                                absl::FormatDuration(step_time), " exceed the ",
                                absl::FormatDuration(kMaxPlannedTime), " a run may last"));
  }
  auto deadline =
      args.GetDuration("deadline", absl::Seconds(30), absl::Milliseconds(1), absl::Minutes(10));
  if (!deadline.ok()) return deadline.status();
  config->run.deadline = *deadline;
  return absl::OkStatus();
}

absl::Status ParseInputs(const ParsedArgs& args, LoadgenConfig* config) {
  config->image_paths = args.positional();
  auto sizes = SplitListValues("--synthetic", args.Values("synthetic"));
  if (!sizes.ok()) return sizes.status();
  for (const std::string& text : *sizes) {
    auto size = ParseImageSize("--synthetic", text);
    if (!size.ok()) return size.status();
    config->synthetic.push_back(*size);
  }
  if (!RpcTakesImages(config->rpc)) {
    if (!config->image_paths.empty() || !config->synthetic.empty()) {
      return Invalid(
          absl::StrCat("--rpc ", LoadRpcName(config->rpc), " sends no image, got image arguments"));
    }
    for (const FlagSpec& spec : RequestFlagSpecs()) {
      if (spec.name == "model" && config->rpc == LoadRpc::kGetModel) continue;
      if (args.Has(spec.name)) {
        return Invalid(
            absl::StrCat("--", spec.name, " does not apply to --rpc ", LoadRpcName(config->rpc)));
      }
    }
    config->request.model = args.GetString("model", "");
    return absl::OkStatus();
  }
  const VisionTask task = config->rpc == LoadRpc::kClassify ? VisionTask::kClassify
                          : config->rpc == LoadRpc::kDetect ? VisionTask::kDetect
                                                            : VisionTask::kSegment;
  auto request = ParseRequestFlags(args, task);
  if (!request.ok()) return request.status();
  config->request = *std::move(request);
  if (config->image_paths.empty() && config->synthetic.empty()) {
    config->synthetic.push_back(ImageSize{640, 480});
  }
  return absl::OkStatus();
}

absl::Status ParseOutputs(const ParsedArgs& args, LoadgenConfig* config) {
  config->json_path = args.GetString("json", "");
  config->csv_path = args.GetString("csv", "");
  config->plot_path = args.GetString("plot", "");
  for (const char* option : {"json", "csv", "plot"}) {
    if (args.Has(option) && args.GetString(option, "").empty()) {
      return Invalid(absl::StrCat("--", option, ": expected a file path, got an empty string"));
    }
  }
  if (!config->plot_path.empty() && !absl::EndsWithIgnoreCase(config->plot_path, ".png")) {
    return Invalid(
        absl::StrCat("--plot: expected a file name ending in .png, got '", config->plot_path, "'"));
  }
  config->no_progress = args.Has("no-progress");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LoadgenConfig> ParseLoadgenArgs(const std::vector<std::string>& argv) {
  auto parsed = ParsedArgs::Parse(argv, LoadgenFlagSpecs());
  if (!parsed.ok()) return parsed.status();
  const ParsedArgs& args = *parsed;
  LoadgenConfig config;
  if (args.Has("help")) {
    config.help = true;
    return config;
  }
  auto targets = SplitListValues("--target", args.Values("target"));
  if (!targets.ok()) return targets.status();
  config.targets = targets->empty() ? std::vector<std::string>{"localhost:50051"} : *targets;
  for (const std::string& target : config.targets) {
    if (absl::Status valid = ValidateTarget(target); !valid.ok()) return valid;
  }
  if (absl::Status tls = ApplyTlsFlags(args, &config.channel); !tls.ok()) return tls;
  auto connections = args.GetInt("connections", 1, 1, kMaxConnections);
  if (!connections.ok()) return connections.status();
  config.connections = static_cast<int>(*connections);
  auto connect_timeout = args.GetDuration("connect-timeout", absl::Seconds(10),
                                          absl::Milliseconds(1), absl::Minutes(5));
  if (!connect_timeout.ok()) return connect_timeout.status();
  config.connect_timeout = *connect_timeout;
  auto rpc = ParseLoadRpc("--rpc", args.GetString("rpc", "classify"));
  if (!rpc.ok()) return rpc.status();
  config.rpc = *rpc;
  for (auto* parse : {ParseSteps, ParseBounds, ParseInputs, ParseOutputs}) {
    if (absl::Status status = parse(args, &config); !status.ok()) return status;
  }
  return config;
}

std::string LoadgenHelp() {
  return absl::StrCat(
      R"(Usage: internimage-loadgen [OPTIONS] [IMAGE|DIR ...]

Load-tests internimage-serving and reports throughput, latency percentiles from a
high-resolution histogram (min, mean, p50, p90, p95, p99, p99.9, max; <= 0.05% error), errors by
status code and the server's own timing breakdown.

Load shape (one step per value; a list runs a sweep):
  --concurrency N[,N...]   closed loop: N calls always in flight (default 1)
  --rate R[,R...]          open loop: R calls per second; latency is measured from the INTENDED
                           send time, so the generator's own delays are never hidden
  --arrivals KIND          open loop: poisson (default) or constant inter-arrival times
  --seed N                 open loop: seed of the Poisson arrivals (default 1)
  --max-outstanding N      open loop: cap on calls in flight (default 10000)

Length (every run must end by itself; one of the two is required):
  --duration D             measured time per step, e.g. 20s (max 1h)
  --requests N             measured calls per step (max 100000000)
  --warmup D               time before each step's measurement, in no figure (default 0s)
  --deadline D             deadline of each call (default 30s)

What to send:
  --rpc RPC                classify (default), detect, segment, getmodel or health
                           (getmodel and health are cheap: they measure the generator itself)
  --model NAME             model name (default: the server's default model for the task)
  --synthetic WxH[,WxH]    generated JPEGs of these sizes (default 640x480 when no image is given)
  --raw                    send decoded RGB pixels instead of the encoded files
  --tensor N               send ready network inputs: float32 3xNxN tensors (the images resized
                           and normalised here), so the server skips decoding and preprocessing;
                           with N = the model's input size this measures the server against
                           internimage-predict --input (scripts/bench-server.sh)
  --top-k N | --score-threshold F | --max-detections N | --no-masks | --counts-only
                           per-task request options, as in internimage-client
  IMAGE|DIR ...            image files, or directories searched for .jpg/.png/.webp/.bmp

Where to send it:
  --target HOST:PORT       repeat (or comma-separate) to drive a fleet: calls rotate over the
                           targets; a name that resolves to several addresses is spread over
                           all of them (round_robin). Default localhost:50051. Nothing else is
                           ever contacted.
  --connections N          connections per target (default 1)
  --connect-timeout D      how long to wait for each target before giving up (default 10s)
  --tls, --ca-cert FILE, --client-cert FILE, --client-key FILE, --server-name NAME
                           TLS and mutual TLS, as in internimage-client

Output (a table on stdout always):
  --json FILE              one document: run settings and a "steps" array, one entry per step,
                           with requests_ok, requests_failed, throughput_rps,
                           latency_ms {min, mean, p50, p90, p95, p99, p999, max}, errors by code,
                           server_timing_ms, per-target counts and the generator's CPU use
  --csv FILE               one row per step
  --plot FILE.png          p50/p90/p99 latency and throughput against concurrency or rate
  --no-progress            no live progress line (it is shown only when stderr is a terminal)

Before the load starts every target is connected and asked for its models (ListModels), so an
unreachable target or an unknown model fails at once.

Exit codes:
)",
      ExitCodesHelp());
}

}  // namespace iis::client
