// internimage-client: command-line client of internimage-serving (see --help).
#include <iostream>

#include "client/cli/cli_options.h"
#include "client/cli/commands.h"
#include "client/common/exit_codes.h"
#include "common/command_line.h"

int main(int argc, char** argv) {
  auto config = iis::client::ParseCliArgs(iis::common::ArgsOf(argc, argv));
  if (!config.ok()) {
    std::cerr << "internimage-client: " << config.status().message() << " (see --help)\n";
    return iis::client::kExitUsage;
  }
  if (config->help) {
    std::cout << iis::client::CliHelp();
    return iis::client::kExitOk;
  }
  return iis::client::RunCli(*config, std::cout, std::cerr);
}
