#include "client/common/json_writer.h"

#include <limits>

#include "gtest/gtest.h"

namespace iis::client {
namespace {

TEST(JsonWriterTest, WritesNestedDocumentsWithIndentation) {
  JsonWriter json;
  json.BeginObject();
  json.Key("name").String("a\"b\\c\n");
  json.Key("count").Int(-3);
  json.Key("p50").Double(1.25);
  json.Key("nan").Double(std::numeric_limits<double>::quiet_NaN());
  json.Key("ok").Bool(true);
  json.Key("list").BeginArray().Int(1).BeginObject().EndObject().BeginArray().EndArray().EndArray();
  json.Key("none").Null();
  json.EndObject();
  EXPECT_EQ(json.str(),
            "{\n"
            "  \"name\": \"a\\\"b\\\\c\\n\",\n"
            "  \"count\": -3,\n"
            "  \"p50\": 1.25,\n"
            "  \"nan\": null,\n"
            "  \"ok\": true,\n"
            "  \"list\": [\n"
            "    1,\n"
            "    {},\n"
            "    []\n"
            "  ],\n"
            "  \"none\": null\n"
            "}\n");
}

TEST(JsonWriterTest, RawValuesAreReindented) {
  JsonWriter json;
  json.BeginObject().Key("inner").Raw("{\n  \"a\": 1\n}\n").EndObject();
  EXPECT_EQ(json.str(), "{\n  \"inner\": {\n    \"a\": 1\n  }\n}\n");
}

TEST(JsonWriterTest, QuotesControlCharacters) {
  EXPECT_EQ(JsonQuote(std::string("\x01x\t", 3)), "\"\\u0001x\\t\"");
}

}  // namespace
}  // namespace iis::client
