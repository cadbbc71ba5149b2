#include "client/common/args.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace iis::client {
namespace {

bool ParseNumber(const std::string& text, int* value) { return absl::SimpleAtoi(text, value); }
bool ParseNumber(const std::string& text, double* value) { return absl::SimpleAtod(text, value); }

template <typename T>
CLI::Option* AddNumberList(CLI::App& app, absl::string_view name, std::string type_name,
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

CLI::Option* AddListOption(CLI::App& app, absl::string_view name, std::string type_name,
                           std::string description,
                           std::function<absl::Status(absl::string_view item)> add) {
  const std::string flag = absl::StrCat("--", name);
  CLI::Option* option = app.add_option_function<std::vector<std::string>>(
      common::FlagNames(name),
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

CLI::Option* AddListOption(CLI::App& app, absl::string_view name, std::string type_name,
                           std::string description, CLI::Validator range,
                           std::vector<int>* values) {
  return AddNumberList(app, name, std::move(type_name), std::move(description), std::move(range),
                       values);
}

CLI::Option* AddListOption(CLI::App& app, absl::string_view name, std::string type_name,
                           std::string description, CLI::Validator range,
                           std::vector<double>* values) {
  return AddNumberList(app, name, std::move(type_name), std::move(description), std::move(range),
                       values);
}

absl::StatusOr<common::CommandLineResult> ParseClientArgs(CLI::App& app,
                                                          std::vector<std::string> args) {
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
  return common::ParseCommandLine(app, std::move(rewritten));
}

}  // namespace iis::client
