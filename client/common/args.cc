#include "client/common/args.h"

#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace iis::client {
namespace {

const FlagSpec* FindSpec(const std::vector<FlagSpec>& specs, absl::string_view name) {
  for (const FlagSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<ParsedArgs> ParsedArgs::Parse(const std::vector<std::string>& args,
                                             const std::vector<FlagSpec>& specs) {
  ParsedArgs parsed;
  bool options_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (options_ended || arg.size() < 2 || arg[0] != '-') {
      parsed.positional_.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      options_ended = true;
      continue;
    }
    if (arg == "-h" && FindSpec(specs, "help") != nullptr) arg = "--help";
    if (arg.substr(0, 2) != "--") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option '", arg, "': options are written --name (see --help)"));
    }
    absl::string_view body = arg.substr(2);
    absl::string_view name = body;
    bool has_inline_value = false;
    absl::string_view inline_value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = body.substr(0, eq);
      inline_value = body.substr(eq + 1);
      has_inline_value = true;
    }
    const FlagSpec* spec = FindSpec(specs, name);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option '--", name, "' (see --help)"));
    }
    if (!spec->repeatable && parsed.Has(spec->name)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " was given more than once"));
    }
    auto& values = parsed.values_[spec->name];
    if (!spec->takes_value) {
      if (has_inline_value) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " is a switch and takes no value, got '", inline_value, "'"));
      }
      // A switch is recorded with no values: Has() looks at the key.
      continue;
    }
    if (has_inline_value) {
      values.emplace_back(inline_value);
    } else if (i + 1 < args.size()) {
      values.push_back(args[++i]);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    }
  }
  return parsed;
}

bool ParsedArgs::Has(absl::string_view name) const { return values_.find(name) != values_.end(); }

const std::vector<std::string>& ParsedArgs::Values(absl::string_view name) const {
  static const std::vector<std::string>* const kEmpty = new std::vector<std::string>();
  auto it = values_.find(name);
  return it == values_.end() ? *kEmpty : it->second;
}

std::string ParsedArgs::GetString(absl::string_view name, std::string fallback) const {
  const auto& values = Values(name);
  return values.empty() ? std::move(fallback) : values.back();
}

absl::StatusOr<int64_t> ParsedArgs::GetInt(absl::string_view name, int64_t fallback, int64_t min,
                                           int64_t max) const {
  const auto& values = Values(name);
  if (values.empty()) return fallback;
  return ParseIntValue(absl::StrCat("--", name), values.back(), min, max);
}

absl::StatusOr<double> ParsedArgs::GetDouble(absl::string_view name, double fallback, double min,
                                             double max) const {
  const auto& values = Values(name);
  if (values.empty()) return fallback;
  return ParseDoubleValue(absl::StrCat("--", name), values.back(), min, max);
}

absl::StatusOr<absl::Duration> ParsedArgs::GetDuration(absl::string_view name,
                                                       absl::Duration fallback, absl::Duration min,
                                                       absl::Duration max) const {
  const auto& values = Values(name);
  if (values.empty()) return fallback;
  return ParseDurationValue(absl::StrCat("--", name), values.back(), min, max);
}

absl::StatusOr<int64_t> ParseIntValue(absl::string_view flag, absl::string_view text, int64_t min,
                                      int64_t max) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": expected an integer in [", min, ", ", max, "], got '", text, "'"));
  }
  return value;
}

absl::StatusOr<double> ParseDoubleValue(absl::string_view flag, absl::string_view text, double min,
                                        double max) {
  double value = 0;
  if (!absl::SimpleAtod(text, &value) || !std::isfinite(value) || value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": expected a number in [", min, ", ", max, "], got '", text, "'"));
  }
  return value;
}

absl::StatusOr<absl::Duration> ParseDurationValue(absl::string_view flag, absl::string_view text,
                                                  absl::Duration min, absl::Duration max) {
  absl::Duration value;
  if (!absl::ParseDuration(text, &value) || value < min || value > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": expected a duration such as 500ms, 5s or 2m in [", absl::FormatDuration(min), ", ",
        absl::FormatDuration(max), "], got '", text, "'"));
  }
  return value;
}

absl::StatusOr<std::vector<std::string>> SplitListValues(absl::string_view flag,
                                                         const std::vector<std::string>& values) {
  std::vector<std::string> items;
  for (const std::string& value : values) {
    for (absl::string_view item : absl::StrSplit(value, ',')) {
      if (item.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            flag, ": expected a comma-separated list without empty items, got '", value, "'"));
      }
      items.emplace_back(item);
    }
  }
  return items;
}

std::vector<std::string> ArgvToVector(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return args;
}

}  // namespace iis::client
