// A small strict JSON parser, enough for safetensors headers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace iis::models::checkpoint {

// A parsed JSON value. Numbers must be integers that fit in int64 (safetensors headers hold only
// sizes and offsets); objects keep their members in file order.
struct JsonValue {
  enum class Kind { kNull, kBool, kInteger, kString, kArray, kObject };

  // Returns the member called `key` of an object, or nullptr if there is none (or this is not an
  // object).
  const JsonValue* Find(std::string_view key) const;

  Kind kind = Kind::kNull;
  bool boolean = false;                                    // kBool
  int64_t integer = 0;                                     // kInteger
  std::string string;                                      // kString, UTF-8
  std::vector<JsonValue> array;                            // kArray
  std::vector<std::pair<std::string, JsonValue>> members;  // kObject, in file order
};

// Returns the name of `kind` ("null", "integer", "object", ...) for error messages.
const char* JsonKindName(JsonValue::Kind kind);

// Parses `text` (RFC 8259 JSON, whitespace around it allowed) into a value. Refuses, with a
// CheckpointError whose message starts with `source` and gives the byte offset: malformed
// syntax, numbers with a fraction or exponent or outside int64, invalid escapes or unpaired
// surrogates, control characters in strings, duplicate object keys, and nesting deeper than 64.
// Thread-safe (pure function).
JsonValue ParseJson(std::string_view text, const std::string& source);

}  // namespace iis::models::checkpoint
