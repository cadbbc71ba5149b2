#include "common/command_line.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace iis::common {
namespace {

// Lists each option under its first long name (the dashed one): the underscore alias is accepted
// but not advertised.
class DashedNameFormatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override {
    if (is_positional || opt->get_lnames().empty()) {
      return CLI::Formatter::make_option_name(opt, is_positional);
    }
    std::string name;
    for (const std::string& short_name : opt->get_snames()) absl::StrAppend(&name, "-", short_name, ",");
    return absl::StrCat(name, "--", opt->get_lnames().front());
  }

  // Wraps descriptions so that help lines stay within kHelpWidth columns.
  std::string make_option_desc(const CLI::Option* opt) const override {
    const std::string text = CLI::Formatter::make_option_desc(opt);
    const size_t width = kHelpWidth - kNameColumn;
    std::string wrapped;
    size_t line = 0;
    for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
      if (line > 0 && line + 1 + word.size() > width) {
        wrapped += '\n';
        line = 0;
      } else if (line > 0) {
        wrapped += ' ';
        ++line;
      }
      absl::StrAppend(&wrapped, word);
      line += word.size();
    }
    return wrapped;
  }

  static constexpr size_t kHelpWidth = 100;
  static constexpr size_t kNameColumn = 34;
};

// Returns a number in the shortest form that reads back the same ("1", "0.5", "1e+06").
std::string NumberText(double value) { return absl::StrFormat("%g", value); }

}  // namespace

std::string FlagNames(absl::string_view dashed_name) {
  const std::string dashed = absl::StrCat("--", dashed_name);
  if (dashed_name.find('-') == absl::string_view::npos) return dashed;
  return absl::StrCat(dashed, ",--", absl::StrReplaceAll(dashed_name, {{"-", "_"}}));
}

void SetUpCommandLine(CLI::App& app, std::string footer) {
  auto formatter = std::make_shared<DashedNameFormatter>();
  formatter->column_width(DashedNameFormatter::kNameColumn);
  app.formatter(std::move(formatter));
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.footer(std::move(footer));
}

CLI::Validator IntegerIn(int64_t min, int64_t max) {
  const std::string range = absl::StrCat("[", min, ", ", max, "]");
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        int64_t value = 0;
        if (!absl::SimpleAtoi(text, &value) || value < min || value > max) {
          return absl::StrCat("expected an integer in ", range, ", got '", text, "'");
        }
        return "";
      },
      absl::StrCat("in ", range));
}

CLI::Validator NumberIn(double min, double max) {
  const std::string range = absl::StrCat("[", NumberText(min), ", ", NumberText(max), "]");
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        double value = 0;
        if (!absl::SimpleAtod(text, &value) || !(value >= min && value <= max)) {
          return absl::StrCat("expected a number in ", range, ", got '", text, "'");
        }
        return "";
      },
      absl::StrCat("in ", range));
}

CLI::Validator Integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        int64_t value = 0;
        if (absl::SimpleAtoi(text, &value)) return "";
        return absl::StrCat("expected an integer, got '", text, "'");
      },
      "");
}

absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag, absl::string_view text,
                                                 absl::Duration min, absl::Duration max) {
  absl::Duration value;
  if (!absl::ParseDuration(text, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": expected a duration such as 500ms, 5s or 1.5m, got '", text, "'"));
  }
  if (value < min || value > max) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": expected a duration in [",
                                                   absl::FormatDuration(min), ", ",
                                                   absl::FormatDuration(max), "], got '", text,
                                                   "'"));
  }
  return value;
}

namespace {

// Adds a duration option that calls `set` with the parsed value.
template <typename Set>
CLI::Option* AddDuration(CLI::App& app, absl::string_view name, std::string description,
                         absl::Duration min, absl::Duration max, Set set) {
  const std::string flag = absl::StrCat("--", name);
  CLI::Option* option = app.add_option_function<std::string>(
      FlagNames(name),
      [flag, min, max, set](const std::string& text) {
        absl::StatusOr<absl::Duration> value = ParseDurationFlag(flag, text, min, max);
        // CLI11 reports a ValidationError as "<name>: <message>"; the message names it already.
        if (!value.ok()) throw CLI::ValidationError(std::string(value.status().message()));
        set(*value);
      },
      std::move(description));
  option->type_name("DURATION");
  return option;
}

}  // namespace

CLI::Option* AddDurationOption(CLI::App& app, absl::string_view name, absl::Duration* out,
                               std::string description, absl::Duration min, absl::Duration max) {
  return AddDuration(app, name, std::move(description), min, max,
                     [out](absl::Duration value) { *out = value; });
}

CLI::Option* AddDurationOption(CLI::App& app, absl::string_view name,
                               std::optional<absl::Duration>* out, std::string description,
                               absl::Duration min, absl::Duration max) {
  return AddDuration(app, name, std::move(description), min, max,
                     [out](absl::Duration value) { *out = value; });
}

absl::StatusOr<CommandLineResult> ParseCommandLine(CLI::App& app, std::vector<std::string> args) {
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    return CommandLineResult::kHelp;
  } catch (const CLI::ExtrasError&) {
    const std::vector<std::string> extras = app.remaining();
    const std::string first = extras.empty() ? "?" : extras.front();
    return absl::InvalidArgumentError(first.rfind("-", 0) == 0
                                          ? absl::StrCat("unknown option '", first, "'")
                                          : absl::StrCat("unexpected argument '", first, "'"));
  } catch (const CLI::ArgumentMismatch& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(e.what(), " (the option takes one value and may be given once)"));
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return CommandLineResult::kParsed;
}

std::vector<std::string> ArgsOf(int argc, char** argv) {
  return argc > 1 ? std::vector<std::string>(argv + 1, argv + argc) : std::vector<std::string>();
}

}  // namespace iis::common
