#include "common/command_line.h"

#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::common {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A small command line in the project's style.
struct Example {
  Example() : app("An example.", "example") {
    SetUpCommandLine(app, "Exit codes: 0 fine.");
    app.add_option(FlagNames("worker-threads"), threads, "Worker threads.")
        ->check(IntegerIn(1, 64));
    app.add_option(FlagNames("port"), port, "Port.")->check(IntegerIn(0, 65535));
    app.add_option(FlagNames("score-threshold"), threshold, "Threshold.")->check(NumberIn(0, 1));
    AddDurationOption(app, "deadline", &deadline, "Deadline.", absl::Milliseconds(1),
                      absl::Hours(1));
    AddDurationOption(app, "drain-grace", &grace, "Grace.", absl::ZeroDuration(), absl::Hours(1));
    app.add_option(FlagNames("target"), targets, "Targets.")->delimiter(',');
    app.add_flag(FlagNames("json"), json, "JSON.");
    app.add_option("inputs", inputs, "Inputs.");
  }
  absl::StatusOr<CommandLineResult> Parse(std::vector<std::string> args) {
    return ParseCommandLine(app, std::move(args));
  }
  std::string Error(std::vector<std::string> args) {
    absl::StatusOr<CommandLineResult> result = Parse(std::move(args));
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(result.status().message());
  }

  CLI::App app;
  int threads = 2;
  std::optional<int> port;
  double threshold = 0;
  absl::Duration deadline = absl::Seconds(30);
  std::optional<absl::Duration> grace;
  std::vector<std::string> targets;
  bool json = false;
  std::vector<std::string> inputs;
};

TEST(CommandLineTest, AcceptsBothValueFormsBothSpellingsAndMixedPositionals) {
  Example e;
  ASSERT_EQ(*e.Parse({"a.jpg", "--worker-threads", "4", "--port=0", "b.jpg", "--deadline=500ms",
                      "--drain_grace", "2s", "--target", "h:1,h:2", "--target=h:3", "--json",
                      "--score_threshold", "0.25"}),
            CommandLineResult::kParsed);
  EXPECT_EQ(e.threads, 4);
  EXPECT_EQ(e.port, 0);
  EXPECT_EQ(e.deadline, absl::Milliseconds(500));
  EXPECT_EQ(e.grace, absl::Seconds(2));
  EXPECT_EQ(e.threshold, 0.25);
  EXPECT_THAT(e.targets, ElementsAre("h:1", "h:2", "h:3"));
  EXPECT_TRUE(e.json);
  EXPECT_THAT(e.inputs, ElementsAre("a.jpg", "b.jpg"));
}

TEST(CommandLineTest, LeavesUnsetOptionalsUnset) {
  Example e;
  ASSERT_TRUE(e.Parse({}).ok());
  EXPECT_FALSE(e.port.has_value());
  EXPECT_FALSE(e.grace.has_value());
  EXPECT_EQ(e.threads, 2);
}

TEST(CommandLineTest, EveryMalformedValueGetsAPreciseError) {
  EXPECT_EQ(Example().Error({"--worker-threads", "abc"}),
            "--worker-threads: expected an integer in [1, 64], got 'abc'");
  EXPECT_EQ(Example().Error({"--worker-threads", "0"}),
            "--worker-threads: expected an integer in [1, 64], got '0'");
  EXPECT_EQ(Example().Error({"--worker-threads", "3x"}),
            "--worker-threads: expected an integer in [1, 64], got '3x'");
  EXPECT_EQ(Example().Error({"--score-threshold", "nan"}),
            "--score-threshold: expected a number in [0, 1], got 'nan'");
  EXPECT_EQ(Example().Error({"--deadline", "soon"}),
            "--deadline: expected a duration such as 500ms, 5s or 1.5m, got 'soon'");
  EXPECT_EQ(Example().Error({"--deadline", "2h"}),
            "--deadline: expected a duration in [1ms, 1h], got '2h'");
  EXPECT_EQ(Example().Error({"--bogus"}), "unknown option '--bogus'");
  EXPECT_THAT(Example().Error({"--port"}), HasSubstr("--port"));
  EXPECT_THAT(Example().Error({"--port", "1", "--port", "2"}), HasSubstr("--port"));
}

TEST(CommandLineTest, HelpIsGeneratedFromTheDeclarations) {
  Example e;
  EXPECT_EQ(*e.Parse({"--help"}), CommandLineResult::kHelp);
  EXPECT_EQ(*Example().Parse({"-h"}), CommandLineResult::kHelp);
  const std::string help = e.app.help();
  EXPECT_THAT(help, HasSubstr("--worker-threads"));
  EXPECT_THAT(help, HasSubstr("in [1, 64]"));
  EXPECT_THAT(help, HasSubstr("Worker threads."));
  EXPECT_THAT(help, HasSubstr("--drain-grace DURATION"));
  EXPECT_THAT(help, ::testing::Not(HasSubstr("--worker_threads")));  // the alias is not listed
  EXPECT_THAT(help, HasSubstr("Exit codes: 0 fine."));
}

TEST(CommandLineTest, FlagNames) {
  EXPECT_EQ(FlagNames("port"), "--port");
  EXPECT_EQ(FlagNames("metrics-port-file"), "--metrics-port-file,--metrics_port_file");
}

// A command line with the list options of the load generator's shape and a plain one.
struct ListExample {
  ListExample() {
    AddListOption(app, "rate", "R[,R...]", "Rates.", NumberIn(0.001, 1e6), &rates);
    AddListOption(app, "concurrency", "N[,N...]", "Levels.", IntegerIn(1, 100), &levels);
    AddListOption(app, "target", "HOST:PORT", "Targets.", [this](absl::string_view item) {
      if (item == "bad") return absl::InvalidArgumentError("--target: got 'bad'");
      targets.emplace_back(item);
      return absl::OkStatus();
    });
    app.add_option(FlagNames("model"), model, "Model.");
    app.add_flag(FlagNames("json"), json, "JSON.");
    app.add_option("inputs", inputs, "Inputs.");
  }
  std::string Error(std::vector<std::string> args) {
    auto result = ParseCommandLine(app, std::move(args));
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

TEST(CommandLineListTest, ListOptionsRepeatAndSplitAtCommas) {
  ListExample e;
  ASSERT_TRUE(ParseCommandLine(e.app, {"--rate", "5,10", "a.jpg", "--rate=20", "--concurrency", "1",
                                       "b.jpg", "--target", "h:1,h:2", "c.jpg"})
                  .ok());
  EXPECT_THAT(e.rates, ElementsAre(5, 10, 20));
  EXPECT_THAT(e.levels, ElementsAre(1));
  EXPECT_THAT(e.targets, ElementsAre("h:1", "h:2"));
  // A list option takes one value per occurrence: the positionals after it stay positionals.
  EXPECT_THAT(e.inputs, ElementsAre("a.jpg", "b.jpg", "c.jpg"));
}

TEST(CommandLineListTest, ListItemsAreCheckedAndEmptyItemsRefused) {
  EXPECT_EQ(ListExample().Error({"--rate", "5,,10"}),
            "--rate: expected a comma-separated list without empty items, got '5,,10'");
  EXPECT_EQ(ListExample().Error({"--rate", "5,"}),
            "--rate: expected a comma-separated list without empty items, got '5,'");
  EXPECT_EQ(ListExample().Error({"--concurrency", "4,0"}),
            "--concurrency: expected an integer in [1, 100], got '0'");
  EXPECT_EQ(ListExample().Error({"--rate", "fast"}),
            "--rate: expected a number in [0.001, 1e+06], got 'fast'");
  EXPECT_EQ(ListExample().Error({"--target", "h:1,bad"}), "--target: got 'bad'");
}

TEST(CommandLineListTest, HelpShowsTheItemRange) {
  ListExample e;
  SetUpCommandLine(e.app, "");
  EXPECT_THAT(e.app.help(), HasSubstr("--concurrency N[,N...]:each in [1, 100]"));
}

TEST(CommandLineListTest, AnEmptyInlineValueIsTheEmptyString) {
  ListExample e;
  // CLI11 alone would take a.jpg as the model.
  ASSERT_TRUE(ParseCommandLine(e.app, {"--model=", "a.jpg", "--json="}).ok());
  EXPECT_EQ(e.model, "");
  EXPECT_TRUE(e.json);
  EXPECT_THAT(e.inputs, ElementsAre("a.jpg"));
  // After `--` nothing is an option.
  ListExample after;
  ASSERT_TRUE(ParseCommandLine(after.app, {"--", "--model="}).ok());
  EXPECT_EQ(after.model, "unset");
  EXPECT_THAT(after.inputs, ElementsAre("--model="));
  EXPECT_EQ(ListExample().Error({"--rate="}),
            "--rate: expected a comma-separated list without empty items, got ''");
}

}  // namespace
}  // namespace iis::common
