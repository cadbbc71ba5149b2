#include "models/checkpoint/safetensors.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/StringUtil.h>

#include "models/checkpoint/checkpoint_error.h"
#include "models/checkpoint/json.h"
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

// One tensor of the header, checked.
struct TensorInfo {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte range in the data section
  uint64_t end = 0;
};

TensorInfo ParseTensorInfo(const std::string& path, const std::string& name, const JsonValue& value,
                           uint64_t data_size) {
  const auto fail = [&](const std::string& what) {
    return CheckpointError(c10::str(path, ": safetensors header entry '", name, "' ", what));
  };
  if (value.kind != JsonValue::Kind::kObject) {
    throw fail(c10::str("is a JSON ", JsonKindName(value.kind), ", expected an object"));
  }
  for (const auto& member : value.members) {
    if (member.first != "dtype" && member.first != "shape" && member.first != "data_offsets") {
      throw fail(c10::str("has an unknown field '", member.first, "'"));
    }
  }
  const JsonValue* dtype = value.Find("dtype");
  const JsonValue* shape = value.Find("shape");
  const JsonValue* offsets = value.Find("data_offsets");
  if (dtype == nullptr || shape == nullptr || offsets == nullptr) {
    throw fail("lacks one of 'dtype', 'shape' and 'data_offsets'");
  }
  TensorInfo info;
  info.name = name;
  if (dtype->kind != JsonValue::Kind::kString) throw fail("has a non-string dtype");
  const auto known = std::find_if(std::begin(kDtypes), std::end(kDtypes),
                                  [&](const DtypeName& d) { return dtype->string == d.name; });
  if (known == std::end(kDtypes)) {
    throw fail(c10::str("has dtype '", dtype->string,
                        "', which is not supported (supported: F32, F64, F16, BF16, I64, I32, "
                        "I16, I8, U8, BOOL)"));
  }
  info.dtype = known->dtype;

  if (shape->kind != JsonValue::Kind::kArray) throw fail("has a shape that is not an array");
  int64_t numel = 1;
  for (const JsonValue& dim : shape->array) {
    if (dim.kind != JsonValue::Kind::kInteger || dim.integer < 0) {
      throw fail("has a shape entry that is not a non-negative integer");
    }
    if (__builtin_mul_overflow(numel, dim.integer, &numel)) throw fail("has too many elements");
    info.shape.push_back(dim.integer);
  }
  int64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(c10::elementSize(info.dtype)), &nbytes)) {
    throw fail("has too many elements");
  }

  if (offsets->kind != JsonValue::Kind::kArray || offsets->array.size() != 2 ||
      offsets->array[0].kind != JsonValue::Kind::kInteger ||
      offsets->array[1].kind != JsonValue::Kind::kInteger || offsets->array[0].integer < 0 ||
      offsets->array[1].integer < offsets->array[0].integer) {
    throw fail("has data_offsets that are not [begin, end] with 0 <= begin <= end");
  }
  info.begin = static_cast<uint64_t>(offsets->array[0].integer);
  info.end = static_cast<uint64_t>(offsets->array[1].integer);
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

  const JsonValue root = ParseJson(header, path + ": safetensors header");
  if (root.kind != JsonValue::Kind::kObject) {
    throw CheckpointError(c10::str(path, ": the safetensors header is a JSON ",
                                   JsonKindName(root.kind), ", expected an object"));
  }
  std::vector<TensorInfo> tensors;
  tensors.reserve(root.members.size());
  for (const auto& [name, value] : root.members) {
    if (name == "__metadata__") continue;
    tensors.push_back(ParseTensorInfo(path, name, value, data_size));
  }
  std::stable_sort(tensors.begin(), tensors.end(),
                   [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
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
