#include "client/common/args.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A command line with the list options of the load generator's shape and a plain one.
struct Example {
  Example() {
    AddListOption(app, "rate", "R[,R...]", "Rates.", common::NumberIn(0.001, 1e6), &rates);
    AddListOption(app, "concurrency", "N[,N...]", "Levels.", common::IntegerIn(1, 100), &levels);
    AddListOption(app, "target", "HOST:PORT", "Targets.", [this](absl::string_view item) {
      if (item == "bad") return absl::InvalidArgumentError("--target: got 'bad'");
      targets.emplace_back(item);
      return absl::OkStatus();
    });
    app.add_option(common::FlagNames("model"), model, "Model.");
    app.add_flag(common::FlagNames("json"), json, "JSON.");
    app.add_option("inputs", inputs, "Inputs.");
  }
  std::string Error(std::vector<std::string> args) {
    auto result = ParseClientArgs(app, std::move(args));
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(result.status().message());
  }

  CLI::App app;
  std::vector<double> rates;
  std::vector<int> levels;
  std::vector<std::string> targets;
  std::string model = "unset";
  bool json = false;
  std::vector<std::string> inputs;
};

TEST(ArgsTest, ListOptionsRepeatAndSplitAtCommas) {
  Example e;
  ASSERT_TRUE(ParseClientArgs(e.app, {"--rate", "5,10", "a.jpg", "--rate=20", "--concurrency", "1",
                                      "b.jpg", "--target", "h:1,h:2", "c.jpg"})
                  .ok());
  EXPECT_THAT(e.rates, ElementsAre(5, 10, 20));
  EXPECT_THAT(e.levels, ElementsAre(1));
  EXPECT_THAT(e.targets, ElementsAre("h:1", "h:2"));
  // A list option takes one value per occurrence: the positionals after it stay positionals.
  EXPECT_THAT(e.inputs, ElementsAre("a.jpg", "b.jpg", "c.jpg"));
}

TEST(ArgsTest, ListItemsAreCheckedAndEmptyItemsRefused) {
  EXPECT_EQ(Example().Error({"--rate", "5,,10"}),
            "--rate: expected a comma-separated list without empty items, got '5,,10'");
  EXPECT_EQ(Example().Error({"--rate", "5,"}),
            "--rate: expected a comma-separated list without empty items, got '5,'");
  EXPECT_EQ(Example().Error({"--concurrency", "4,0"}),
            "--concurrency: expected an integer in [1, 100], got '0'");
  EXPECT_EQ(Example().Error({"--rate", "fast"}),
            "--rate: expected a number in [0.001, 1e+06], got 'fast'");
  EXPECT_EQ(Example().Error({"--target", "h:1,bad"}), "--target: got 'bad'");
}

TEST(ArgsTest, HelpShowsTheItemRange) {
  Example e;
  common::SetUpCommandLine(e.app, "");
  EXPECT_THAT(e.app.help(), HasSubstr("--concurrency N[,N...]:each in [1, 100]"));
}

TEST(ArgsTest, AnEmptyInlineValueIsTheEmptyString) {
  Example e;
  // CLI11 alone would take a.jpg as the model.
  ASSERT_TRUE(ParseClientArgs(e.app, {"--model=", "a.jpg", "--json="}).ok());
  EXPECT_EQ(e.model, "");
  EXPECT_TRUE(e.json);
  EXPECT_THAT(e.inputs, ElementsAre("a.jpg"));
  // After `--` nothing is an option.
  Example after;
  ASSERT_TRUE(ParseClientArgs(after.app, {"--", "--model="}).ok());
  EXPECT_EQ(after.model, "unset");
  EXPECT_THAT(after.inputs, ElementsAre("--model="));
  EXPECT_EQ(Example().Error({"--rate="}),
            "--rate: expected a comma-separated list without empty items, got ''");
}

}  // namespace
}  // namespace iis::client
