#include "client/common/args.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<FlagSpec> kSpecs = {
    {"help", false},        {"json", false},    {"model", true},     {"top-k", true},
    {"target", true, true}, {"deadline", true}, {"rate", true, true}};

absl::StatusOr<ParsedArgs> Parse(std::vector<std::string> args) {
  return ParsedArgs::Parse(args, kSpecs);
}

TEST(ArgsTest, SeparatesOptionsAndPositionals) {
  auto args = Parse({"classify", "--model", "m1", "a.jpg", "--json", "--top-k=3", "b.png"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(args->positional(), ElementsAre("classify", "a.jpg", "b.png"));
  EXPECT_EQ(args->GetString("model", ""), "m1");
  EXPECT_TRUE(args->Has("json"));
  EXPECT_FALSE(args->Has("deadline"));
  EXPECT_EQ(*args->GetInt("top-k", 0, 1, 10), 3);
  EXPECT_EQ(*args->GetInt("missing-is-fallback", 7, 1, 10), 7);
}

TEST(ArgsTest, DoubleDashEndsOptionsAndDashHIsHelp) {
  auto args = Parse({"-h", "--", "--json", "-x"});
  ASSERT_TRUE(args.ok());
  EXPECT_TRUE(args->Has("help"));
  EXPECT_FALSE(args->Has("json"));
  EXPECT_THAT(args->positional(), ElementsAre("--json", "-x"));
}

TEST(ArgsTest, RepeatableOptionsKeepEveryValue) {
  auto args = Parse({"--target", "a:1", "--target=b:2", "--rate", "5,10", "--rate", "20"});
  ASSERT_TRUE(args.ok());
  EXPECT_THAT(args->Values("target"), ElementsAre("a:1", "b:2"));
  auto rates = SplitListValues("--rate", args->Values("rate"));
  ASSERT_TRUE(rates.ok());
  EXPECT_THAT(*rates, ElementsAre("5", "10", "20"));
}

TEST(ArgsTest, ErrorsNameTheOptionAndWhatCame) {
  EXPECT_THAT(std::string(Parse({"--bogus"}).status().message()), HasSubstr("--bogus"));
  EXPECT_THAT(std::string(Parse({"-x"}).status().message()), HasSubstr("'-x'"));
  EXPECT_THAT(std::string(Parse({"--model"}).status().message()),
              HasSubstr("--model needs a value"));
  EXPECT_THAT(std::string(Parse({"--json=yes"}).status().message()),
              HasSubstr("--json is a switch"));
  EXPECT_THAT(std::string(Parse({"--model", "a", "--model", "b"}).status().message()),
              HasSubstr("--model was given more than once"));

  auto args = Parse({"--top-k", "abc", "--deadline", "5", "--rate", "5,,10"});
  ASSERT_TRUE(args.ok());
  auto top_k = args->GetInt("top-k", 0, 1, 10);
  ASSERT_FALSE(top_k.ok());
  EXPECT_EQ(top_k.status().message(), "--top-k: expected an integer in [1, 10], got 'abc'");
  auto deadline =
      args->GetDuration("deadline", absl::Seconds(1), absl::Milliseconds(1), absl::Hours(1));
  ASSERT_FALSE(deadline.ok());
  EXPECT_THAT(std::string(deadline.status().message()),
              HasSubstr("--deadline: expected a duration such as 500ms"));
  EXPECT_THAT(std::string(deadline.status().message()), HasSubstr("got '5'"));
  EXPECT_THAT(std::string(SplitListValues("--rate", args->Values("rate")).status().message()),
              HasSubstr("'5,,10'"));
}

TEST(ArgsTest, RangesAreEnforced) {
  EXPECT_FALSE(ParseIntValue("--n", "11", 1, 10).ok());
  EXPECT_FALSE(ParseIntValue("--n", "0", 1, 10).ok());
  EXPECT_EQ(*ParseIntValue("--n", "10", 1, 10), 10);
  EXPECT_FALSE(ParseDoubleValue("--r", "nan", 0, 1e6).ok());
  EXPECT_FALSE(ParseDoubleValue("--r", "-1", 0, 1e6).ok());
  EXPECT_DOUBLE_EQ(*ParseDoubleValue("--r", "2.5", 0, 1e6), 2.5);
  EXPECT_EQ(*ParseDurationValue("--d", "1.5s", absl::ZeroDuration(), absl::Hours(1)),
            absl::Milliseconds(1500));
  EXPECT_FALSE(ParseDurationValue("--d", "2h", absl::ZeroDuration(), absl::Hours(1)).ok());
  EXPECT_FALSE(ParseDurationValue("--d", "-1s", absl::ZeroDuration(), absl::Hours(1)).ok());
}

}  // namespace
}  // namespace iis::client
