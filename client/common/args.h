// What internimage-client's and internimage-loadgen's command lines need beyond
// common/command_line.h (which sets the style: CLI11, --name value / --name=value, generated help):
//   - list options, repeatable and comma-separated (--target, and the loadgen's --concurrency,
//     --rate, --synthetic), whose empty items are refused rather than dropped;
//   - `--name=` giving --name the empty string (CLI11 2.1.2 would take the next argument as the
//     value, so `--visualize= a.jpg` would draw into a directory named a.jpg).
// Both are general; they belong in common/command_line.h once its owner takes them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/command_line.h"

namespace iis::client {

// Declares --<name> (underscore alias included) as a list option on `app`: it may be given several
// times and each value may hold several items separated by commas, so `--rate 5,10 --rate 20`
// means `--rate 5,10,20`. While parsing, `add` is called with every item in the order given; an
// error it returns (INVALID_ARGUMENT, its message naming the option) fails the parse with that
// message. An empty item fails it too: "--rate: expected a comma-separated list without empty
// items, got '5,,10'". Help shows the option as `--<name> <type_name>`.
CLI::Option* AddListOption(CLI::App& app, absl::string_view name, std::string type_name,
                           std::string description,
                           std::function<absl::Status(absl::string_view item)> add);

// Declares a list option (as AddListOption) of integers or numbers: every item must pass `range`
// (common::IntegerIn or common::NumberIn, shown in help) and is appended to *values.
CLI::Option* AddListOption(CLI::App& app, absl::string_view name, std::string type_name,
                           std::string description, CLI::Validator range, std::vector<int>* values);
CLI::Option* AddListOption(CLI::App& app, absl::string_view name, std::string type_name,
                           std::string description, CLI::Validator range,
                           std::vector<double>* values);

// Parses `args` (argv without the program name) into `app` as common::ParseCommandLine does
// (same results and errors), except that `--name=` with nothing after the `=` gives an option that
// takes a value the empty string (which its own check may then refuse).
absl::StatusOr<common::CommandLineResult> ParseClientArgs(CLI::App& app,
                                                          std::vector<std::string> args);

}  // namespace iis::client
