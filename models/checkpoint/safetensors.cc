#include "models/checkpoint/safetensors.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/StringUtil.h>
#include <nlohmann/json.hpp>

#include "models/checkpoint/checkpoint_error.h"
#include "models/checkpoint/read_only_file.h"
#include "models/checkpoint/tensor_bytes.h"

namespace iis::models::checkpoint {
namespace {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor bytes are copied as stored (little endian); a big-endian host would need swaps"
#endif

// The reference implementation refuses headers over 100 MB; so do we, before allocating.
constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct DtypeName {
  const char* name;
  at::ScalarType dtype;
};

constexpr DtypeName kDtypes[] = {
    {"F32", at::kFloat}, {"F64", at::kDouble}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
    {"I64", at::kLong},  {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},
    {"U8", at::kByte},   {"BOOL", at::kBool},
};

// Parsed headers use std::map objects: lookups and inserts stay O(log n) for headers of any size
// (nlohmann::ordered_json would search linearly on every insert, quadratic in the tensor count).
using Json = nlohmann::json;

// Containers nested deeper than this are refused (safetensors headers nest three deep).
constexpr int kMaxDepth = 64;

// Returns what() of a nlohmann exception without its "[json.exception.parse_error.101] " tag.
std::string JsonErrorText(const Json::exception& error) {
  const std::string_view text = error.what();
  const size_t tag_end = text.find("] ");
  return std::string(tag_end == std::string_view::npos ? text : text.substr(tag_end + 2));
}

// The checks nlohmann's parser lacks, as a first pass over the header through nlohmann's SAX
// interface: an object with a repeated key (nlohmann would keep the last one silently; a header
// naming a tensor twice is ambiguous) and containers nested deeper than kMaxDepth. Syntax errors
// arrive here too. Every refusal throws a CheckpointError starting with the file's path.
// (A parse callback could do the same in one pass, but nlohmann's callback parser scans the
// enclosing object after every nested object ends: quadratic in the number of tensors, 15 s for
// 20,000.)
class HeaderChecker {
 public:
  explicit HeaderChecker(const std::string& path) : path_(path) {}

  bool null() { return true; }
  bool boolean(bool /*value*/) { return true; }
  bool number_integer(Json::number_integer_t /*value*/) { return true; }
  bool number_unsigned(Json::number_unsigned_t /*value*/) { return true; }
  bool number_float(Json::number_float_t /*value*/, const Json::string_t& /*text*/) { return true; }
  bool string(Json::string_t& /*value*/) { return true; }
  bool binary(Json::binary_t& /*value*/) { return true; }

  bool start_object(std::size_t /*elements*/) {
    Enter();
    open_objects_.emplace_back();
    return true;
  }
  bool key(Json::string_t& key) {
    if (!open_objects_.back().insert(key).second) {
      throw CheckpointError(c10::str(path_, ": the safetensors header has the key \"", key,
                                     "\" twice in one object"));
    }
    return true;
  }
  bool end_object() {
    open_objects_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t /*elements*/) {
    Enter();
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const Json::exception& error) {
    throw CheckpointError(
        c10::str(path_, ": the safetensors header is not valid JSON: ", JsonErrorText(error)));
  }

 private:
  void Enter() {
    if (++depth_ > kMaxDepth) {
      throw CheckpointError(c10::str(path_, ": the safetensors header nests containers deeper ",
                                     "than ", kMaxDepth, " levels"));
    }
  }

  const std::string& path_;
  int depth_ = 0;
  std::vector<std::unordered_set<std::string>> open_objects_;  // the keys seen, per open object
};

// Parses `text` as strict RFC 8259 JSON (nlohmann's parser: no comments, no trailing text,
// valid UTF-8) that passes HeaderChecker. Throws CheckpointError starting with `path`.
Json ParseHeaderJson(const std::string& text, const std::string& path) {
  HeaderChecker checker(path);
  try {
    Json::sax_parse(text, &checker);
    return Json::parse(text);
  } catch (const Json::exception& error) {  // not expected after the first pass
    throw CheckpointError(
        c10::str(path, ": the safetensors header is not valid JSON: ", JsonErrorText(error)));
  }
}

// Returns `value` if it is an integer in [0, INT64_MAX], nullopt for anything else (negative,
// too large, a fraction or exponent form, not a number).
std::optional<int64_t> NonNegativeInteger(const Json& value) {
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(v);
    }
  } else if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return value.get<int64_t>();
  }
  return std::nullopt;
}

// One tensor of the header, checked.
struct TensorInfo {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte range in the data section
  uint64_t end = 0;
};

TensorInfo ParseTensorInfo(const std::string& path, const std::string& name, const Json& value,
                           uint64_t data_size) {
  const auto fail = [&](const std::string& what) {
    return CheckpointError(c10::str(path, ": safetensors header entry '", name, "' ", what));
  };
  if (!value.is_object()) {
    throw fail(c10::str("is a JSON ", value.type_name(), ", expected an object"));
  }
  for (const auto& member : value.items()) {
    if (member.key() != "dtype" && member.key() != "shape" && member.key() != "data_offsets") {
      throw fail(c10::str("has an unknown field '", member.key(), "'"));
    }
  }
  const auto dtype = value.find("dtype");
  const auto shape = value.find("shape");
  const auto offsets = value.find("data_offsets");
  if (dtype == value.end() || shape == value.end() || offsets == value.end()) {
    throw fail("lacks one of 'dtype', 'shape' and 'data_offsets'");
  }
  TensorInfo info;
  info.name = name;
  if (!dtype->is_string()) throw fail("has a non-string dtype");
  const std::string& dtype_name = dtype->get_ref<const std::string&>();
  const auto known = std::find_if(std::begin(kDtypes), std::end(kDtypes),
                                  [&](const DtypeName& d) { return dtype_name == d.name; });
  if (known == std::end(kDtypes)) {
    throw fail(c10::str("has dtype '", dtype_name,
                        "', which is not supported (supported: F32, F64, F16, BF16, I64, I32, "
                        "I16, I8, U8, BOOL)"));
  }
  info.dtype = known->dtype;

  if (!shape->is_array()) throw fail("has a shape that is not an array");
  int64_t numel = 1;
  for (const Json& entry : *shape) {
    const std::optional<int64_t> dim = NonNegativeInteger(entry);
    if (!dim) throw fail("has a shape entry that is not a non-negative integer");
    if (__builtin_mul_overflow(numel, *dim, &numel)) throw fail("has too many elements");
    info.shape.push_back(*dim);
  }
  int64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(c10::elementSize(info.dtype)), &nbytes)) {
    throw fail("has too many elements");
  }

  std::optional<int64_t> begin;
  std::optional<int64_t> end;
  if (offsets->is_array() && offsets->size() == 2) {
    begin = NonNegativeInteger((*offsets)[0]);
    end = NonNegativeInteger((*offsets)[1]);
  }
  if (!begin || !end || *end < *begin) {
    throw fail("has data_offsets that are not [begin, end] with 0 <= begin <= end");
  }
  info.begin = static_cast<uint64_t>(*begin);
  info.end = static_cast<uint64_t>(*end);
  if (info.end > data_size) {
    throw fail(c10::str("has data_offsets [", info.begin, ", ", info.end,
                        "] outside the data section of ", data_size, " bytes"));
  }
  if (info.end - info.begin != static_cast<uint64_t>(nbytes)) {
    throw fail(c10::str("covers ", info.end - info.begin, " bytes but a ",
                        c10::toString(info.dtype), " tensor of shape ",
                        c10::IntArrayRef(info.shape), " needs ", nbytes));
  }
  return info;
}

}  // namespace

StateDict ReadSafetensors(const std::string& path) {
  ReadOnlyFile file(path);
  if (file.size() < 8) {
    throw CheckpointError(c10::str(path, ": ", file.size(),
                                   " bytes is too small for a safetensors file (truncated?)"));
  }
  unsigned char prefix[8];
  file.ReadAt(0, prefix, 8);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | prefix[i];
  if (header_size > file.size() - 8 || header_size > kMaxHeaderSize) {
    throw CheckpointError(c10::str(path, ": safetensors header length ", header_size,
                                   " does not fit the file's ", file.size(),
                                   " bytes (truncated or not a safetensors file)"));
  }
  std::string header(header_size, '\0');
  file.ReadAt(8, header.data(), header_size);
  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = file.size() - data_start;

  const Json root = ParseHeaderJson(header, path);
  if (!root.is_object()) {
    throw CheckpointError(c10::str(path, ": the safetensors header is a JSON ", root.type_name(),
                                   ", expected an object"));
  }
  std::vector<TensorInfo> tensors;
  tensors.reserve(root.size());
  for (const auto& member : root.items()) {  // in name order
    if (member.key() == "__metadata__") continue;
    tensors.push_back(ParseTensorInfo(path, member.key(), member.value(), data_size));
  }
  // Data order; an empty tensor comes before the tensor that starts where it sits.
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& info : tensors) {
    if (info.begin == info.end) continue;
    if (previous != nullptr && info.begin < previous->end) {
      throw CheckpointError(c10::str(path, ": safetensors tensors '", previous->name, "' [",
                                     previous->begin, ", ", previous->end, ") and '", info.name,
                                     "' [", info.begin, ", ", info.end, ") overlap"));
    }
    previous = &info;
  }

  StateDict weights(path);
  for (const TensorInfo& info : tensors) {
    at::Tensor tensor = at::empty(info.shape, at::TensorOptions().dtype(info.dtype));
    file.ReadAt(data_start + info.begin, tensor.data_ptr(), info.end - info.begin);
    if (info.dtype == at::kBool) {
      CheckBoolBytes(tensor.data_ptr(), info.end - info.begin,
                     c10::str(path, ": bool tensor '", info.name, "'"));
    }
    weights.Insert(info.name, std::move(tensor));
  }
  return weights;
}

}  // namespace iis::models::checkpoint
