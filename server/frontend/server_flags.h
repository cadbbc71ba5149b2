// The command-line flags of the server binaries (internimage-server and the test server
// tests/fake_vision_server), declared once in the project's style (common/command_line.h).
// Values that the configuration holds are only checked for syntax here; MakeServerConfig
// validates their ranges, whether they came from the file or from a flag.
#pragma once

#include <string>

#include "CLI/CLI.hpp"
#include "server/config/server_config.h"

namespace iis {

// What the server flags set. Fields keep their values when the flag is not given, so a caller can
// preset defaults of its own (the test server listens on 127.0.0.1 and free ports).
struct ServerFlags {
  std::string config;  // --config: the text-format ServerConfig file ("" = defaults only)
  ConfigOverrides overrides;
  std::string port_file;          // --port-file
  std::string metrics_port_file;  // --metrics-port-file
  bool print_config = false;      // --print-config
};

// Declares --config, the configuration overrides (--host, --port, --metrics-port, --drain-grace,
// --worker-threads, --cpu-inference-threads, --device, --max-message-bytes, --max-image-pixels,
// --tls-cert, --tls-key, --tls-client-ca), --port-file, --metrics-port-file and --print-config on
// `app`, bound to `*flags`, which must outlive the parse.
void AddServerFlags(CLI::App& app, ServerFlags* flags);

}  // namespace iis
