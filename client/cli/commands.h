// internimage-client's commands: calling the server and printing (or drawing) the answers.
#pragma once

#include <ostream>

#include "client/cli/cli_options.h"

namespace iis::client {

// Runs a parsed command line (config.help must be false) against config.channel.target.
// Results go to `out` (readable tables, or one JSON document with --json); errors go to `err`
// as "<image>: <STATUS_CODE>: <message>". Inference commands go through every image, continuing
// after a failed one (except after UNAVAILABLE, when the server is unreachable or draining), and
// return the exit code of the first failure (exit_codes.h); health returns kExitNotServing when
// the server answers anything but SERVING.
int RunCli(const CliConfig& config, std::ostream& out, std::ostream& err);

}  // namespace iis::client
