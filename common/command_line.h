// The command-line style of every binary of the project (internimage-server, internimage-client,
// internimage-loadgen, internimage-predict and the test server), on CLI11:
//   - long options with dashes (--metrics-port); the same name with underscores is accepted too
//     (--metrics_port) but help lists only the dashed one;
//   - `--name value` and `--name=value`; switches take no value; `--` ends the options;
//   - help (-h, --help) generated from the declarations, with a footer of the binary's own;
//   - list options (AddListOption): repeatable and comma-separated, empty items refused;
//   - every malformed value is refused with a message naming the option, what it expects and
//     what it got, e.g. "--threads: expected an integer in [1, 1024], got 'abc'".
// Declaring options is not thread-safe (one CLI::App per thread); the validators are.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace iis::common {

// Returns the CLI11 name list of a long option: "--metrics-port,--metrics_port" for
// "metrics-port", "--port" for "port".
std::string FlagNames(absl::string_view dashed_name);

// Makes `app` print help in the project's style (options under their dashed names, wide enough
// columns) ending with `footer` (e.g. exit codes), and accept -h/--help.
void SetUpCommandLine(CLI::App& app, std::string footer);

// Validators: accept a value in [min, max] (inclusive) and say so in help; the error names what is
// expected and what was given. Use them where the command line is the one place a value is
// checked; where a binary hands the value on to a validated configuration (the server), check
// only the syntax with Integer() and leave the range to the configuration.
CLI::Validator IntegerIn(int64_t min, int64_t max);
CLI::Validator NumberIn(double min, double max);
CLI::Validator Integer();

// Parses `text` as a duration in absl::ParseDuration syntax (500ms, 5s, 1.5m, 2h) within
// [min, max] (infinite bounds: any). Errors: INVALID_ARGUMENT "<flag>: expected a duration ...,
// got '<text>'".
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag, absl::string_view text,
                                                 absl::Duration min, absl::Duration max);

// Adds `--<name>` taking a duration within [min, max] into `*out` (left alone when the option is
// not given).
CLI::Option* AddDurationOption(CLI::App& app, absl::string_view name, absl::Duration* out,
                               std::string description, absl::Duration min, absl::Duration max);
// The same for an optional setting: `*out` is set only when the option is given.
CLI::Option* AddDurationOption(CLI::App& app, absl::string_view name,
                               std::optional<absl::Duration>* out, std::string description,
                               absl::Duration min, absl::Duration max);

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
CLI::Option* AddListOption(CLI::App& app, absl::string_view name, const std::string& type_name,
                           std::string description, CLI::Validator range, std::vector<int>* values);
CLI::Option* AddListOption(CLI::App& app, absl::string_view name, const std::string& type_name,
                           std::string description, CLI::Validator range,
                           std::vector<double>* values);

// What ParseCommandLine found.
enum class CommandLineResult { kParsed, kHelp };

// Parses `args` (argv without the program name) into the options of `app`. `--name=` with nothing
// after the `=` gives an option that takes a value the empty string (CLI11 2.1.2 alone would take
// the next argument as its value), which the option's own check may then refuse. Returns kHelp
// when -h/--help was given, kParsed otherwise. Errors: INVALID_ARGUMENT naming the option and the
// problem: an unknown option ("unknown option '--bogus'"), a missing or malformed value, a value
// given to a switch, a single-valued option given twice.
absl::StatusOr<CommandLineResult> ParseCommandLine(CLI::App& app, std::vector<std::string> args);

// Returns argv[1..argc) as strings.
std::vector<std::string> ArgsOf(int argc, char** argv);

}  // namespace iis::common
