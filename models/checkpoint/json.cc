#include "models/checkpoint/json.h"

#include <limits>
#include <unordered_set>

#include <c10/util/StringUtil.h>

#include "models/checkpoint/checkpoint_error.h"

namespace iis::models::checkpoint {
namespace {

constexpr int kMaxDepth = 64;

class JsonParser {
 public:
  JsonParser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  JsonValue ParseDocument() {
    SkipSpace();
    JsonValue value = ParseValue(0);
    SkipSpace();
    if (pos_ != text_.size()) Fail("unexpected text after the JSON value");
    return value;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw CheckpointError(c10::str(source_, ": invalid JSON at byte ", pos_, ": ", what));
  }

  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }

  void SkipSpace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r')) {
      ++pos_;
    }
  }

  void Expect(char c) {
    if (Peek() != c || AtEnd()) Fail(c10::str("expected '", c, "'"));
    ++pos_;
  }

  void ExpectWord(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) Fail(c10::str("expected '", word, "'"));
    pos_ += word.size();
  }

  JsonValue ParseValue(int depth) {
    if (depth > kMaxDepth) Fail(c10::str("nesting deeper than ", kMaxDepth));
    JsonValue value;
    switch (Peek()) {
      case '{':
        ParseObject(value, depth);
        break;
      case '[':
        ParseArray(value, depth);
        break;
      case '"':
        value.kind = JsonValue::Kind::kString;
        value.string = ParseString();
        break;
      case 't':
        ExpectWord("true");
        value.kind = JsonValue::Kind::kBool;
        value.boolean = true;
        break;
      case 'f':
        ExpectWord("false");
        value.kind = JsonValue::Kind::kBool;
        break;
      case 'n':
        ExpectWord("null");
        break;
      default:
        if (Peek() == '-' || (Peek() >= '0' && Peek() <= '9')) {
          value.kind = JsonValue::Kind::kInteger;
          value.integer = ParseInteger();
        } else {
          Fail(AtEnd() ? "the text ends where a value should be" : "expected a value");
        }
    }
    return value;
  }

  void ParseObject(JsonValue& value, int depth) {
    value.kind = JsonValue::Kind::kObject;
    Expect('{');
    SkipSpace();
    if (Peek() == '}') {
      ++pos_;
      return;
    }
    std::unordered_set<std::string> keys;
    while (true) {
      SkipSpace();
      if (Peek() != '"') Fail("expected a string key");
      std::string key = ParseString();
      if (!keys.insert(key).second) Fail(c10::str("duplicate key \"", key, "\""));
      SkipSpace();
      Expect(':');
      SkipSpace();
      JsonValue member = ParseValue(depth + 1);
      value.members.emplace_back(std::move(key), std::move(member));
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      Expect('}');
      return;
    }
  }

  void ParseArray(JsonValue& value, int depth) {
    value.kind = JsonValue::Kind::kArray;
    Expect('[');
    SkipSpace();
    if (Peek() == ']') {
      ++pos_;
      return;
    }
    while (true) {
      SkipSpace();
      value.array.push_back(ParseValue(depth + 1));
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      Expect(']');
      return;
    }
  }

  int64_t ParseInteger() {
    const bool negative = Peek() == '-';
    if (negative) ++pos_;
    if (!(Peek() >= '0' && Peek() <= '9') || AtEnd()) Fail("expected a digit");
    if (Peek() == '0' && pos_ + 1 < text_.size() && text_[pos_ + 1] >= '0' &&
        text_[pos_ + 1] <= '9') {
      Fail("a number with a leading zero");
    }
    // Accumulate as a negative number so INT64_MIN is representable.
    int64_t value = 0;
    constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
      const int digit = Peek() - '0';
      if (value < (kMin + digit) / 10) Fail("an integer outside the 64-bit range");
      value = value * 10 - digit;
      ++pos_;
    }
    if (Peek() == '.' || Peek() == 'e' || Peek() == 'E') {
      Fail("a number with a fraction or exponent (only integers are expected)");
    }
    if (!negative) {
      if (value == kMin) Fail("an integer outside the 64-bit range");
      value = -value;
    }
    return value;
  }

  unsigned ParseHex4() {
    if (text_.size() - pos_ < 4) Fail("a truncated \\u escape");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      code <<= 4;
      if (c >= '0' && c <= '9') {
        code |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        code |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        code |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        --pos_;
        Fail("a \\u escape with a non-hex digit");
      }
    }
    return code;
  }

  static void AppendUtf8(std::string& out, unsigned code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  std::string ParseString() {
    Expect('"');
    std::string out;
    while (true) {
      if (AtEnd()) Fail("an unterminated string");
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) Fail("a control character inside a string");
      if (c != '\\') {
        out += c;
        ++pos_;
        continue;
      }
      ++pos_;
      if (AtEnd()) Fail("an unterminated escape");
      const char escape = text_[pos_++];
      switch (escape) {
        case '"':
        case '\\':
        case '/':
          out += escape;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned code = ParseHex4();
          if (code >= 0xDC00 && code <= 0xDFFF) Fail("an unpaired low surrogate");
          if (code >= 0xD800 && code <= 0xDBFF) {
            if (text_.substr(pos_, 2) != "\\u") Fail("an unpaired high surrogate");
            pos_ += 2;
            const unsigned low = ParseHex4();
            if (low < 0xDC00 || low > 0xDFFF) Fail("an unpaired high surrogate");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(out, code);
          break;
        }
        default:
          --pos_;
          Fail(c10::str("an invalid escape '\\", escape, "'"));
      }
    }
  }

  std::string_view text_;
  const std::string& source_;
  size_t pos_ = 0;
};

}  // namespace

const JsonValue* JsonValue::Find(std::string_view key) const {
  for (const auto& [name, value] : members) {
    if (name == key) return &value;
  }
  return nullptr;
}

const char* JsonKindName(JsonValue::Kind kind) {
  switch (kind) {
    case JsonValue::Kind::kNull:
      return "null";
    case JsonValue::Kind::kBool:
      return "boolean";
    case JsonValue::Kind::kInteger:
      return "integer";
    case JsonValue::Kind::kString:
      return "string";
    case JsonValue::Kind::kArray:
      return "array";
    case JsonValue::Kind::kObject:
      return "object";
  }
  return "?";
}

JsonValue ParseJson(std::string_view text, const std::string& source) {
  return JsonParser(text, source).ParseDocument();
}

}  // namespace iis::models::checkpoint
