// Loading, defaults, command-line overrides and validation of the server configuration
// (internimage.serving.v1.ServerConfig, proto/internimage/serving/v1/server_config.proto).
//
// The usual sequence, which MakeServerConfig() runs: parse the text-format file, apply the
// documented defaults, apply the flags the user gave, validate. Every function here is a pure
// function of its arguments (apart from reading the files named in the configuration) and is
// thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "internimage/serving/v1/server_config.pb.h"
#include "server/batching/batch_queue.h"
#include "server/engine/model_catalog.h"

namespace iis {

using ServerConfig = internimage::serving::v1::ServerConfig;

// Settings given on the command line. Each one that is set replaces the configuration's value
// (after defaults, so an override of 0 means 0, e.g. metrics_port 0 picks a free port).
struct ConfigOverrides {
  std::optional<std::string> host;  // replaces the host part of listen_address
  std::optional<int> port;          // replaces the port part of listen_address
  std::optional<int> metrics_port;  // -1 disables metrics, 0 picks a free port
  std::optional<absl::Duration> drain_grace;
  std::optional<int> worker_threads;
  std::optional<int> cpu_inference_threads;
  std::optional<int64_t> max_message_bytes;
  std::optional<int64_t> max_image_pixels;
  std::optional<std::string> tls_cert_file;
  std::optional<std::string> tls_key_file;
  std::optional<std::string> tls_client_ca_file;
  std::optional<std::string> device;  // replaces every model's device
};

// A listen address split into its parts; IPv6 hosts are kept without brackets.
struct HostPort {
  std::string host;
  int port = 0;
};

// Splits "host:port" or "[v6 host]:port" (port 0..65535). Errors: INVALID_ARGUMENT.
absl::StatusOr<HostPort> SplitListenAddress(absl::string_view address);

// Joins host and port, adding brackets around an IPv6 host.
std::string JoinHostPort(absl::string_view host, int port);

// Parses protobuf text format. Errors: INVALID_ARGUMENT with "line:column: problem" for each
// syntax error or unknown field.
absl::StatusOr<ServerConfig> ParseServerConfig(absl::string_view text);

// Reads and parses a text-format file. Errors: NOT_FOUND / PERMISSION_DENIED when it cannot be
// read (message names the path and the system error), INVALID_ARGUMENT as ParseServerConfig.
absl::StatusOr<ServerConfig> LoadServerConfigFile(const std::string& path);

// Returns the batch queue options of `model`: its batching settings and one batch thread per
// instance (num_instances = instances). The one conversion; FindBatchQueueOptionProblems checks
// the result both in ValidateServerConfig and when the runtime creates the queue.
BatchQueueOptions BatchQueueOptionsFor(const internimage::serving::v1::ModelConfig& model);

// Replaces every zero value by the default server_config.proto documents for it (listen address,
// metrics port, the three default models, per-model name/version/device/instances/precision/
// batching (the architecture's default batch size, models/registry.h)/warm-up, limits, drain
// grace, thread counts) and marks the first model of each task as its default when no model of
// that task asks to be. Idempotent.
void ApplyConfigDefaults(ServerConfig* config);

// Applies `overrides` to `config` (call after ApplyConfigDefaults). Errors: INVALID_ARGUMENT when
// the listen address cannot be split to replace its host or port.
absl::Status ApplyConfigOverrides(const ConfigOverrides& overrides, ServerConfig* config);

// Checks a configuration after defaults and overrides. Every problem is reported, joined by "; ",
// each naming its field, e.g. "models[1].batching.max_batch_size must be >= 1, got -2",
// "models[2].name \"a\" is already used by models[0]". TLS and weights files must be readable.
// Errors: INVALID_ARGUMENT.
absl::Status ValidateServerConfig(const ServerConfig& config);

// Runs the whole sequence: load `path` (empty: start from an empty configuration), defaults,
// overrides, validation. Errors: as the functions above.
absl::StatusOr<ServerConfig> MakeServerConfig(const std::string& path,
                                              const ConfigOverrides& overrides);

// Returns the configuration as text format, for the start-up log.
std::string ServerConfigToText(const ServerConfig& config);

}  // namespace iis
