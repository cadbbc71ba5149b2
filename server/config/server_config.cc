#include "server/config/server_config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_io.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "models/placement.h"
#include "models/registry.h"

namespace iis {
namespace {

using internimage::serving::v1::BatchingConfig;
using internimage::serving::v1::ModelConfig;

constexpr char kDefaultListenAddress[] = "0.0.0.0:50051";
constexpr int kDefaultMetricsPort = 8002;
constexpr int64_t kDefaultMaxMessageBytes = int64_t{64} << 20;
constexpr int64_t kDefaultMaxImagePixels = 40'000'000;
constexpr int kDefaultMaxImageSide = 16384;
constexpr int kDefaultDrainGraceMs = 30'000;
constexpr int kDefaultMaxQueueDelayUs = 2000;
constexpr int kDefaultMaxQueueSize = 64;
constexpr const char* kDefaultArchitectures[] = {
    "internimage_t_1k_224",
    "mask_rcnn_internimage_t_fpn_1x_coco",
    "upernet_internimage_t_512_160k_ade20k",
};

// Collects the text-format parser's complaints as "line:column: message".
class ParseErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(absl::StrCat(line + 1, ":", column + 1, ": ", message));
  }
  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::vector<std::string> errors_;
};

int CpuCores() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// Returns "" when `path` can be opened for reading, else the reason.
std::string Unreadable(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (in.is_open()) return "";
  return std::strerror(errno);
}

// Accumulates validation problems.
class Problems {
 public:
  template <typename... Args>
  void Add(const Args&... args) {
    problems_.push_back(absl::StrCat(args...));
  }
  absl::Status ToStatus() const {
    if (problems_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("invalid server configuration: ", absl::StrJoin(problems_, "; ")));
  }

 private:
  std::vector<std::string> problems_;
};

void CheckReadable(const std::string& field, const std::string& path, Problems& problems) {
  const std::string reason = Unreadable(path);
  if (!reason.empty()) problems.Add(field, ": cannot read \"", path, "\": ", reason);
}

void ValidateBatching(const std::string& prefix, const ModelConfig& model, Problems& problems) {
  const BatchingConfig& batching = model.batching();
  for (const BatchQueueOptionProblem& p :
       FindBatchQueueOptionProblems(BatchQueueOptionsFor(model))) {
    // The configuration spells two of the queue's options differently.
    if (p.field == "num_instances") {
      problems.Add(prefix, "instances must be ", p.must_be, ", got ", p.got);
    } else if (p.field == "max_queue_delay") {
      problems.Add(prefix, "batching.max_queue_delay_us must be ", p.must_be, ", got ",
                   batching.max_queue_delay_us());
    } else {
      problems.Add(prefix, "batching.", p.field, " must be ", p.must_be, ", got ", p.got);
    }
  }
}

// Returns the task of a registered architecture, or nullopt.
std::optional<Task> TaskOf(const std::string& architecture) {
  const models::Architecture* arch = models::FindArchitecture(architecture);
  if (arch == nullptr) return std::nullopt;
  return arch->task;
}

}  // namespace

BatchQueueOptions BatchQueueOptionsFor(const ModelConfig& model) {
  BatchQueueOptions options;
  options.name = model.name();
  const BatchingConfig& batching = model.batching();
  options.max_batch_size = batching.max_batch_size();
  options.max_queue_delay = absl::Microseconds(batching.max_queue_delay_us());
  options.preferred_batch_sizes.assign(batching.preferred_batch_sizes().begin(),
                                       batching.preferred_batch_sizes().end());
  options.max_queue_size = batching.max_queue_size();
  options.num_instances = model.instances();
  return options;
}

absl::StatusOr<HostPort> SplitListenAddress(absl::string_view address) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", address, "\" is not host:port: ", why));
  };
  HostPort out;
  absl::string_view port;
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find("]:");
    if (close == absl::string_view::npos) return invalid("missing \"]:\" after an IPv6 host");
    out.host = std::string(address.substr(1, close - 1));
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return invalid("missing \":port\"");
    out.host = std::string(address.substr(0, colon));
    if (out.host.find(':') != std::string::npos) return invalid("put an IPv6 host in brackets");
    port = address.substr(colon + 1);
  }
  if (out.host.empty()) return invalid("empty host");
  if (!absl::SimpleAtoi(port, &out.port) || out.port < 0 || out.port > 65535 ||
      (port.size() > 1 && port[0] == '+')) {
    return invalid(absl::StrCat("port \"", port, "\" is not a number in [0, 65535]"));
  }
  return out;
}

std::string JoinHostPort(absl::string_view host, int port) {
  if (host.find(':') != absl::string_view::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<ServerConfig> ParseServerConfig(absl::string_view text) {
  ServerConfig config;
  google::protobuf::TextFormat::Parser parser;
  ParseErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat("server configuration is not valid text format: ", errors.Joined()));
  }
  return config;
}

absl::StatusOr<ServerConfig> LoadServerConfigFile(const std::string& path) {
  absl::StatusOr<std::string> text = common::ReadFile("configuration file", path);
  if (!text.ok()) return text.status();
  absl::StatusOr<ServerConfig> config = ParseServerConfig(*text);
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

void ApplyConfigDefaults(ServerConfig* config) {
  if (config->listen_address().empty()) config->set_listen_address(kDefaultListenAddress);
  if (config->metrics_port() == 0) config->set_metrics_port(kDefaultMetricsPort);
  if (config->models().empty()) {
    for (const char* architecture : kDefaultArchitectures) {
      config->add_models()->set_architecture(architecture);
    }
  }
  for (ModelConfig& model : *config->mutable_models()) {
    if (model.name().empty()) model.set_name(model.architecture());
    if (model.version().empty()) model.set_version("1");
    if (model.device().empty()) model.set_device("auto");
    if (model.instances() == 0) model.set_instances(1);
    if (model.precision().empty()) model.set_precision("float32");
    if (model.warmup_iterations() == 0) model.set_warmup_iterations(1);
    BatchingConfig* batching = model.mutable_batching();
    if (batching->max_batch_size() == 0) {
      const models::Architecture* arch = models::FindArchitecture(model.architecture());
      // An unknown architecture fails validation; its batch size only needs to be valid.
      batching->set_max_batch_size(arch != nullptr ? arch->default_max_batch_size : 1);
    }
    if (batching->max_queue_delay_us() == 0)
      batching->set_max_queue_delay_us(kDefaultMaxQueueDelayUs);
    if (batching->max_queue_size() == 0) batching->set_max_queue_size(kDefaultMaxQueueSize);
  }
  // The first model of a task is its default unless one of them asks to be.
  for (Task task : {Task::kClassification, Task::kDetection, Task::kSegmentation}) {
    ModelConfig* first = nullptr;
    bool has_default = false;
    for (ModelConfig& model : *config->mutable_models()) {
      if (TaskOf(model.architecture()) != task) continue;
      if (first == nullptr) first = &model;
      has_default |= model.default_for_task();
    }
    if (first != nullptr && !has_default) first->set_default_for_task(true);
  }
  auto* limits = config->mutable_limits();
  if (limits->max_message_bytes() == 0) limits->set_max_message_bytes(kDefaultMaxMessageBytes);
  if (limits->max_image_pixels() == 0) limits->set_max_image_pixels(kDefaultMaxImagePixels);
  if (limits->max_image_side() == 0) limits->set_max_image_side(kDefaultMaxImageSide);
  if (config->drain_grace_period_ms() == 0) config->set_drain_grace_period_ms(kDefaultDrainGraceMs);
  if (config->worker_threads() == 0) config->set_worker_threads(CpuCores());
  if (config->cpu_inference_threads() == 0) config->set_cpu_inference_threads(CpuCores());
}

absl::Status ApplyConfigOverrides(const ConfigOverrides& overrides, ServerConfig* config) {
  if (overrides.host.has_value() || overrides.port.has_value()) {
    absl::StatusOr<HostPort> address = SplitListenAddress(config->listen_address());
    if (!address.ok()) return address.status();
    if (overrides.host.has_value()) address->host = *overrides.host;
    if (overrides.port.has_value()) address->port = *overrides.port;
    config->set_listen_address(JoinHostPort(address->host, address->port));
  }
  if (overrides.metrics_port.has_value()) config->set_metrics_port(*overrides.metrics_port);
  if (overrides.drain_grace.has_value()) {
    const int64_t ms = absl::ToInt64Milliseconds(*overrides.drain_grace);
    if (ms > std::numeric_limits<int32_t>::max() || ms < std::numeric_limits<int32_t>::min()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "drain grace ", absl::FormatDuration(*overrides.drain_grace), " is out of range"));
    }
    config->set_drain_grace_period_ms(static_cast<int32_t>(ms));
  }
  if (overrides.worker_threads.has_value()) config->set_worker_threads(*overrides.worker_threads);
  if (overrides.cpu_inference_threads.has_value()) {
    config->set_cpu_inference_threads(*overrides.cpu_inference_threads);
  }
  auto* limits = config->mutable_limits();
  if (overrides.max_message_bytes.has_value()) {
    limits->set_max_message_bytes(*overrides.max_message_bytes);
  }
  if (overrides.max_image_pixels.has_value()) {
    limits->set_max_image_pixels(*overrides.max_image_pixels);
  }
  auto* tls = config->mutable_tls();
  if (overrides.tls_cert_file.has_value()) tls->set_cert_file(*overrides.tls_cert_file);
  if (overrides.tls_key_file.has_value()) tls->set_key_file(*overrides.tls_key_file);
  if (overrides.tls_client_ca_file.has_value()) {
    tls->set_client_ca_file(*overrides.tls_client_ca_file);
  }
  if (overrides.device.has_value()) {
    for (ModelConfig& model : *config->mutable_models()) model.set_device(*overrides.device);
  }
  return absl::OkStatus();
}

absl::Status ValidateServerConfig(const ServerConfig& config) {
  Problems problems;
  if (absl::StatusOr<HostPort> address = SplitListenAddress(config.listen_address());
      !address.ok()) {
    problems.Add("listen_address: ", address.status().message());
  }
  if (config.metrics_port() < -1 || config.metrics_port() > 65535) {
    problems.Add("metrics_port must be -1 (off) or in [0, 65535], got ", config.metrics_port());
  }
  if (config.models().empty()) problems.Add("models must not be empty");

  std::map<std::string, int> names;  // name -> first index
  std::map<Task, int> defaults;      // task -> index of its default model
  for (int i = 0; i < config.models_size(); ++i) {
    const ModelConfig& model = config.models(i);
    const std::string prefix = absl::StrCat("models[", i, "].");
    const std::optional<Task> task = TaskOf(model.architecture());
    if (model.architecture().empty()) {
      problems.Add(prefix, "architecture is required");
    } else if (!task.has_value()) {
      problems.Add(prefix, "architecture \"", absl::CHexEscape(model.architecture()),
                   "\" is not a known architecture family: expected one of ",
                   models::ArchitectureNames(Task::kClassification), " (classification), ",
                   models::ArchitectureNames(Task::kDetection), " (detection), ",
                   models::ArchitectureNames(Task::kSegmentation), " (segmentation)");
    }
    if (!IsValidModelName(model.name())) {
      problems.Add(prefix, "name must be 1 to 128 characters of [A-Za-z0-9._-], got \"",
                   absl::CHexEscape(model.name()), "\"");
    } else if (auto [it, inserted] = names.emplace(model.name(), i); !inserted) {
      problems.Add(prefix, "name \"", model.name(), "\" is already used by models[", it->second,
                   "]");
    }
    if (model.version().empty() || model.version().size() > 64) {
      problems.Add(prefix, "version must be 1 to 64 characters, got \"",
                   absl::CHexEscape(model.version()), "\"");
    }
    if (!model.weights().empty()) CheckReadable(prefix + "weights", model.weights(), problems);
    const std::optional<models::DeviceSpec> device = models::ParseDevice(model.device());
    if (!device.has_value()) {
      problems.Add(prefix, "device must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got \"",
                   absl::CHexEscape(model.device()), "\"");
    }
    const std::optional<models::Precision> precision = models::ParsePrecision(model.precision());
    if (!precision.has_value()) {
      problems.Add(prefix, "precision must be \"float32\", \"float16\" or \"bfloat16\", got \"",
                   absl::CHexEscape(model.precision()), "\"");
    } else if (device.has_value()) {
      if (const std::string problem = models::PrecisionProblem(*precision, device->kind);
          !problem.empty()) {
        problems.Add(prefix, problem, ", but ", prefix, "device is \"", model.device(), "\"");
      }
    }
    if (model.warmup_iterations() < -1) {
      problems.Add(prefix, "warmup_iterations must be -1 (none) or >= 1, got ",
                   model.warmup_iterations());
    }
    ValidateBatching(prefix, model, problems);
    if (task.has_value() && model.default_for_task()) {
      if (auto [it, inserted] = defaults.emplace(*task, i); !inserted) {
        problems.Add(prefix, "default_for_task: models[", it->second, "] (\"",
                     config.models(it->second).name(), "\") is already the default ",
                     std::string(TaskName(*task)), " model");
      }
    }
  }

  const auto& limits = config.limits();
  if (limits.max_message_bytes() < 1 ||
      limits.max_message_bytes() > std::numeric_limits<int32_t>::max()) {
    problems.Add("limits.max_message_bytes must be in [1, 2147483647], got ",
                 limits.max_message_bytes());
  }
  if (limits.max_image_pixels() < 1) {
    problems.Add("limits.max_image_pixels must be >= 1, got ", limits.max_image_pixels());
  }
  if (limits.max_image_side() < 1) {
    problems.Add("limits.max_image_side must be >= 1, got ", limits.max_image_side());
  }

  const auto& tls = config.tls();
  if (tls.cert_file().empty() != tls.key_file().empty()) {
    problems.Add("tls.cert_file and tls.key_file must be set together (got ",
                 tls.cert_file().empty() ? "only key_file" : "only cert_file", ")");
  }
  if (!tls.client_ca_file().empty() && tls.cert_file().empty()) {
    problems.Add("tls.client_ca_file needs tls.cert_file and tls.key_file (mutual TLS is TLS)");
  }
  if (!tls.cert_file().empty()) CheckReadable("tls.cert_file", tls.cert_file(), problems);
  if (!tls.key_file().empty()) CheckReadable("tls.key_file", tls.key_file(), problems);
  if (!tls.client_ca_file().empty()) {
    CheckReadable("tls.client_ca_file", tls.client_ca_file(), problems);
  }

  if (config.drain_grace_period_ms() < 0) {
    problems.Add("drain_grace_period_ms must be >= 0, got ", config.drain_grace_period_ms());
  }
  if (config.worker_threads() < 1) {
    problems.Add("worker_threads must be >= 1, got ", config.worker_threads());
  }
  if (config.cpu_inference_threads() < 1) {
    problems.Add("cpu_inference_threads must be >= 1, got ", config.cpu_inference_threads());
  }
  return problems.ToStatus();
}

absl::StatusOr<ServerConfig> MakeServerConfig(const std::string& path,
                                              const ConfigOverrides& overrides) {
  ServerConfig config;
  if (!path.empty()) {
    absl::StatusOr<ServerConfig> loaded = LoadServerConfigFile(path);
    if (!loaded.ok()) return loaded.status();
    config = *std::move(loaded);
  }
  ApplyConfigDefaults(&config);
  if (absl::Status status = ApplyConfigOverrides(overrides, &config); !status.ok()) return status;
  if (absl::Status status = ValidateServerConfig(config); !status.ok()) return status;
  return config;
}

std::string ServerConfigToText(const ServerConfig& config) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  return text;
}

}  // namespace iis
