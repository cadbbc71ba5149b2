#include "client/common/json_writer.h"

#include <cassert>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace iis::client {

std::string JsonQuote(absl::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  out.push_back('"');
  for (char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

void JsonWriter::NewLine() {
  out_.push_back('\n');
  out_.append(2 * has_elements_.size(), ' ');
}

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (has_elements_.empty()) {
    assert(out_.empty() && "a JSON document holds one top-level value");
    return;
  }
  if (has_elements_.back()) out_.push_back(',');
  has_elements_.back() = true;
  NewLine();
}

JsonWriter& JsonWriter::BeginObject() {
  BeforeValue();
  out_.push_back('{');
  has_elements_.push_back(false);
  return *this;
}

JsonWriter& JsonWriter::Close(char bracket) {
  assert(!has_elements_.empty() && !after_key_);
  const bool had_elements = has_elements_.back();
  has_elements_.pop_back();
  if (had_elements) NewLine();
  out_.push_back(bracket);
  return *this;
}

JsonWriter& JsonWriter::EndObject() { return Close('}'); }

JsonWriter& JsonWriter::BeginArray() {
  BeforeValue();
  out_.push_back('[');
  has_elements_.push_back(false);
  return *this;
}

JsonWriter& JsonWriter::EndArray() { return Close(']'); }

JsonWriter& JsonWriter::Key(absl::string_view key) {
  assert(!has_elements_.empty() && !after_key_);
  BeforeValue();
  out_ += JsonQuote(key);
  out_ += ": ";
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::String(absl::string_view value) {
  BeforeValue();
  out_ += JsonQuote(value);
  return *this;
}

JsonWriter& JsonWriter::Int(int64_t value) {
  BeforeValue();
  absl::StrAppend(&out_, value);
  return *this;
}

JsonWriter& JsonWriter::Double(double value) {
  if (!std::isfinite(value)) return Null();
  BeforeValue();
  absl::StrAppendFormat(&out_, "%.10g", value);
  return *this;
}

JsonWriter& JsonWriter::Bool(bool value) {
  BeforeValue();
  out_ += value ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::Null() {
  BeforeValue();
  out_ += "null";
  return *this;
}

JsonWriter& JsonWriter::Raw(absl::string_view json) {
  BeforeValue();
  // Re-indent the nested document's lines to the current depth.
  const std::string indent(2 * has_elements_.size(), ' ');
  for (char c : json) {
    out_.push_back(c);
    if (c == '\n') out_ += indent;
  }
  while (!out_.empty() && (out_.back() == ' ' || out_.back() == '\n')) out_.pop_back();
  return *this;
}

std::string JsonWriter::str() const {
  return has_elements_.empty() && !out_.empty() ? out_ + "\n" : out_;
}

}  // namespace iis::client
