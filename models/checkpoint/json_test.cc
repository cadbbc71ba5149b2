#include "models/checkpoint/json.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/checkpoint/checkpoint_error.h"

namespace iis::models::checkpoint {
namespace {

using ::testing::HasSubstr;

std::string ErrorOf(const std::string& text) {
  try {
    ParseJson(text, "header.json");
  } catch (const CheckpointError& error) {
    return error.what();
  }
  return "no error";
}

TEST(JsonTest, ParsesObjectsArraysIntegersAndLiterals) {
  const JsonValue value = ParseJson(
      R"( {"b": [1, -2, 0, 9223372036854775807, -9223372036854775808], "a": {"t": true,
      "f": false, "n": null, "e": {}, "l": []}} )",
      "test");
  ASSERT_EQ(value.kind, JsonValue::Kind::kObject);
  ASSERT_EQ(value.members.size(), 2u);
  EXPECT_EQ(value.members[0].first, "b");  // file order, not sorted
  const JsonValue* numbers = value.Find("b");
  ASSERT_NE(numbers, nullptr);
  ASSERT_EQ(numbers->array.size(), 5u);
  EXPECT_EQ(numbers->array[1].integer, -2);
  EXPECT_EQ(numbers->array[3].integer, INT64_MAX);
  EXPECT_EQ(numbers->array[4].integer, INT64_MIN);
  const JsonValue* nested = value.Find("a");
  ASSERT_NE(nested, nullptr);
  EXPECT_TRUE(nested->Find("t")->boolean);
  EXPECT_EQ(nested->Find("f")->kind, JsonValue::Kind::kBool);
  EXPECT_FALSE(nested->Find("f")->boolean);
  EXPECT_EQ(nested->Find("n")->kind, JsonValue::Kind::kNull);
  EXPECT_EQ(nested->Find("e")->kind, JsonValue::Kind::kObject);
  EXPECT_EQ(nested->Find("l")->kind, JsonValue::Kind::kArray);
  EXPECT_EQ(value.Find("missing"), nullptr);
}

TEST(JsonTest, DecodesEscapesAndSurrogatePairs) {
  const JsonValue value =
      ParseJson(R"("q\" b\\ s\/ \b\f\n\r\t \u00fc \u2713 \ud83d\ude00 raw ü")", "test");
  EXPECT_EQ(value.string, "q\" b\\ s/ \b\f\n\r\t \xC3\xBC \xE2\x9C\x93 \xF0\x9F\x98\x80 raw ü");
}

TEST(JsonTest, RejectsMalformedTextWithItsPosition) {
  EXPECT_THAT(ErrorOf(R"({"a": 1,})"), HasSubstr("header.json: invalid JSON at byte 8"));
  EXPECT_THAT(ErrorOf(R"({"a": 1} x)"), HasSubstr("unexpected text after the JSON value"));
  EXPECT_THAT(ErrorOf(R"({"a": 01})"), HasSubstr("leading zero"));
  EXPECT_THAT(ErrorOf(R"({"a": 1.5})"), HasSubstr("fraction or exponent"));
  EXPECT_THAT(ErrorOf(R"({"a": 1e3})"), HasSubstr("fraction or exponent"));
  EXPECT_THAT(ErrorOf(R"({"a": 9223372036854775808})"), HasSubstr("outside the 64-bit range"));
  EXPECT_THAT(ErrorOf(R"({"a": -})"), HasSubstr("expected a digit"));
  EXPECT_THAT(ErrorOf(R"({"a": "x)"), HasSubstr("unterminated string"));
  EXPECT_THAT(ErrorOf("{\"a\": \"x\ny\"}"), HasSubstr("control character"));
  EXPECT_THAT(ErrorOf(R"({"a": "\x"})"), HasSubstr("invalid escape"));
  EXPECT_THAT(ErrorOf(R"({"a": "\u12"})"), HasSubstr("\\u escape"));
  EXPECT_THAT(ErrorOf(R"({"a": "\ud83d"})"), HasSubstr("unpaired high surrogate"));
  EXPECT_THAT(ErrorOf(R"({"a": "\ude00"})"), HasSubstr("unpaired low surrogate"));
  EXPECT_THAT(ErrorOf(R"({"a": 1, "a": 2})"), HasSubstr("duplicate key \"a\""));
  EXPECT_THAT(ErrorOf(R"({a: 1})"), HasSubstr("expected a string key"));
  EXPECT_THAT(ErrorOf(R"([1 2])"), HasSubstr("expected ']'"));
  EXPECT_THAT(ErrorOf(R"(tru)"), HasSubstr("expected 'true'"));
  EXPECT_THAT(ErrorOf(""), HasSubstr("ends where a value should be"));
}

TEST(JsonTest, LimitsNestingDepth) {
  EXPECT_NO_THROW(ParseJson(std::string(60, '[') + std::string(60, ']'), "test"));
  EXPECT_THAT(ErrorOf(std::string(100000, '[') + std::string(100000, ']')),
              HasSubstr("nesting deeper than 64"));
}

}  // namespace
}  // namespace iis::models::checkpoint
