// Command-line parsing shared by internimage-client and internimage-loadgen.
//
// Both tools take GNU-style long options (`--name value` or `--name=value`, switches without a
// value, `--` ends the options) mixed freely with positional arguments. Every error message names
// the option, what was expected and what came, e.g.
//   --top-k: expected an integer in [1, 1000], got 'abc'
// The parser knows nothing about either tool: each main() describes its options with FlagSpec and
// turns the ParsedArgs into its own Options struct.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace iis::client {

// One option a command line may carry.
struct FlagSpec {
  std::string name;         // without the leading dashes, e.g. "top-k"
  bool takes_value = true;  // false: a switch such as --json (`--json=x` is then an error)
  bool repeatable = false;  // true: may be given several times (all values are kept)
};

// A parsed command line: option values by name and positional arguments in order.
// Immutable after Parse(); safe to read from several threads.
class ParsedArgs {
 public:
  // Parses `args` (argv without the program name) against `specs`. `-h` is read as `--help`
  // when a "help" spec exists. Fails with INVALID_ARGUMENT on an unknown option, a missing value,
  // a value given to a switch, or a non-repeatable option given twice.
  static absl::StatusOr<ParsedArgs> Parse(const std::vector<std::string>& args,
                                          const std::vector<FlagSpec>& specs);

  // Returns true when the option was given at least once.
  bool Has(absl::string_view name) const;
  // Returns every value given for `name`, in order (empty when absent or a switch).
  const std::vector<std::string>& Values(absl::string_view name) const;
  // Returns the positional arguments in order.
  const std::vector<std::string>& positional() const { return positional_; }

  // Typed getters: return `fallback` when the option is absent, the parsed value when it is
  // valid, INVALID_ARGUMENT naming the option otherwise. Bounds are inclusive.
  std::string GetString(absl::string_view name, std::string fallback) const;
  absl::StatusOr<int64_t> GetInt(absl::string_view name, int64_t fallback, int64_t min,
                                 int64_t max) const;
  absl::StatusOr<double> GetDouble(absl::string_view name, double fallback, double min,
                                   double max) const;
  // Durations are written like 500ms, 5s, 1.5m or 2h (absl::ParseDuration syntax).
  absl::StatusOr<absl::Duration> GetDuration(absl::string_view name, absl::Duration fallback,
                                             absl::Duration min, absl::Duration max) const;

 private:
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
  std::vector<std::string> positional_;
};

// Parses one value of option `flag` (used in messages) with the same rules as the getters above.
absl::StatusOr<int64_t> ParseIntValue(absl::string_view flag, absl::string_view text, int64_t min,
                                      int64_t max);
absl::StatusOr<double> ParseDoubleValue(absl::string_view flag, absl::string_view text, double min,
                                        double max);
absl::StatusOr<absl::Duration> ParseDurationValue(absl::string_view flag, absl::string_view text,
                                                  absl::Duration min, absl::Duration max);

// Splits every value of a repeatable option at commas, so `--rate 5,10 --rate 20` and
// `--rate 5,10,20` mean the same. Empty items are an INVALID_ARGUMENT error.
absl::StatusOr<std::vector<std::string>> SplitListValues(absl::string_view flag,
                                                         const std::vector<std::string>& values);

// Converts a vector of C strings (argv) into strings, skipping argv[0].
std::vector<std::string> ArgvToVector(int argc, char** argv);

}  // namespace iis::client
