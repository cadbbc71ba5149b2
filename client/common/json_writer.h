// A small streaming JSON writer for the tools' machine-readable output (--json).
//
// Usage:
//   JsonWriter json;
//   json.BeginObject().Key("ok").Int(3).Key("p50_ms").Double(1.25).EndObject();
//   std::string text = json.str();
// Output is indented with two spaces. Misuse (a value where a key is due, unbalanced End*) is a
// programming error caught by assert in debug builds. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace iis::client {

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // Writes an object key; the next call writes its value.
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  // Writes a finite double with up to 10 significant digits; NaN and infinities become null.
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // Writes `json`, which must already be one valid JSON value (e.g. a protobuf message printed by
  // google::protobuf::util::MessageToJsonString), re-indented to fit.
  JsonWriter& Raw(absl::string_view json);

  // Returns the document written so far, with a trailing newline once it is complete.
  std::string str() const;

 private:
  void BeforeValue();
  JsonWriter& Close(char bracket);
  void NewLine();

  std::string out_;
  // One entry per open container: true when it already holds an element.
  std::vector<bool> has_elements_;
  bool after_key_ = false;
};

// Returns `value` as a quoted JSON string with the necessary escapes.
std::string JsonQuote(absl::string_view value);

}  // namespace iis::client
