#include "common/command_line.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
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
    for (const std::string& short_name : opt->get_snames())
      absl::StrAppend(&name, "-", short_name, ",");
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
  std::string dashed = absl::StrCat("--", dashed_name);
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
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": expected a duration such as 500ms, 5s or 1.5m, got '", text, "'"));
  }
  if (value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": expected a duration in [", absl::FormatDuration(min), ", ",
                     absl::FormatDuration(max), "], got '", text, "'"));
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

CLI::Option* AddListOption(CLI::App& app, absl::string_view name, std::string type_name,
                           std::string description,
                           std::function<absl::Status(absl::string_view item)> add) {
  const std::string flag = absl::StrCat("--", name);
  CLI::Option* option = app.add_option_function<std::vector<std::string>>(
      FlagNames(name),
      [flag, add = std::move(add)](const std::vector<std::string>& values) {
        for (const std::string& value : values) {
          for (absl::string_view item : absl::StrSplit(value, ',')) {
            const absl::Status status =
                item.empty() ? absl::InvalidArgumentError(absl::StrCat(
                                   flag,
                                   ": expected a comma-separated list without empty items, "
                                   "got '",
                                   value, "'"))
                             : add(item);
            // The message names the option already (CLI11 would prefix it again otherwise).
            if (!status.ok()) throw CLI::ValidationError(std::string(status.message()));
          }
        }
      },
      std::move(description));
  // One value per occurrence, every occurrence kept: without allow_extra_args(false) CLI11 would
  // read the positional arguments that follow as further values (and split a value written [a,b]
  // itself).
  option->expected(1)->allow_extra_args(false)->multi_option_policy(
      CLI::MultiOptionPolicy::TakeAll);
  option->type_name(std::move(type_name));
  return option;
}

namespace {

bool ParseNumber(const std::string& text, int* value) { return absl::SimpleAtoi(text, value); }
bool ParseNumber(const std::string& text, double* value) { return absl::SimpleAtod(text, value); }

template <typename T>
CLI::Option* AddNumberList(CLI::App& app, absl::string_view name, const std::string& type_name,
                           std::string description, CLI::Validator range, std::vector<T>* values) {
  const std::string shown_type = absl::StrCat(type_name, ":each ", range.get_description());
  const std::string flag = absl::StrCat("--", name);
  return AddListOption(
      app, name, shown_type, std::move(description),
      [flag, range = std::move(range), values](absl::string_view item) -> absl::Status {
        std::string text(item);
        std::string error = range(text);
        T value{};
        if (error.empty() && !ParseNumber(text, &value)) {
          error = absl::StrCat("expected a number, got '", text, "'");  // `range` let it through
        }
        if (!error.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", error));
        values->push_back(value);
        return absl::OkStatus();
      });
}

}  // namespace

CLI::Option* AddListOption(CLI::App& app, absl::string_view name, const std::string& type_name,
                           std::string description, CLI::Validator range,
                           std::vector<int>* values) {
  return AddNumberList(app, name, type_name, std::move(description), std::move(range), values);
}

CLI::Option* AddListOption(CLI::App& app, absl::string_view name, const std::string& type_name,
                           std::string description, CLI::Validator range,
                           std::vector<double>* values) {
  return AddNumberList(app, name, type_name, std::move(description), std::move(range), values);
}

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
  std::vector<std::string> rewritten;
  rewritten.reserve(args.size());
  bool options_ended = false;
  for (std::string& arg : args) {
    if (arg == "--") options_ended = true;
    // `--name=`: CLI11 reads an empty inline value as no value and takes the next argument.
    if (!options_ended && absl::StartsWith(arg, "--") && arg.find('=') == arg.size() - 1) {
      std::string name = arg.substr(0, arg.size() - 1);
      const CLI::Option* option = app.get_option_no_throw(name);
      if (option != nullptr && option->get_items_expected_max() > 0) {
        rewritten.push_back(std::move(name));
        rewritten.emplace_back();
        continue;
      }
    }
    rewritten.push_back(std::move(arg));
  }
  args = std::move(rewritten);
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    return CommandLineResult::kHelp;
  } catch (const CLI::ExtrasError&) {
    const std::vector<std::string> extras = app.remaining();
    const std::string first = extras.empty() ? "?" : extras.front();
    return absl::InvalidArgumentError(first.rfind('-', 0) == 0
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
