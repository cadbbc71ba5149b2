#include "models/checkpoint/testing/expect_tensor.h"

#include <cstring>
#include <map>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace iis::models::checkpoint::fixtures {

at::ScalarType DtypeFromPythonName(const std::string& name) {
  static const std::map<std::string, at::ScalarType> kDtypes = {
      {"float32", at::kFloat},     {"float64", at::kDouble}, {"float16", at::kHalf},
      {"bfloat16", at::kBFloat16}, {"int64", at::kLong},     {"int32", at::kInt},
      {"int16", at::kShort},       {"int8", at::kChar},      {"uint8", at::kByte},
      {"bool", at::kBool},
  };
  const auto it = kDtypes.find(name);
  if (it == kDtypes.end()) {
    ADD_FAILURE() << "unknown dtype " << name;
    return at::kFloat;
  }
  return it->second;
}

void ExpectSameTensor(const at::Tensor& tensor, const ExpectedTensor& expected) {
  SCOPED_TRACE(expected.name);
  ASSERT_TRUE(tensor.defined());
  EXPECT_TRUE(tensor.device().is_cpu());
  EXPECT_EQ(tensor.scalar_type(), DtypeFromPythonName(expected.dtype));
  EXPECT_EQ(tensor.sizes().vec(), expected.sizes);
  EXPECT_EQ(tensor.strides().vec(), expected.strides);
  EXPECT_EQ(tensor.storage_offset(), expected.storage_offset);
  const at::Tensor contiguous = tensor.contiguous();
  ASSERT_EQ(static_cast<size_t>(contiguous.numel() * contiguous.element_size()),
            expected.bytes.size());
  if (expected.bytes.empty()) return;  // an empty tensor may have no data pointer
  EXPECT_EQ(std::memcmp(contiguous.data_ptr(), expected.bytes.data(), expected.bytes.size()), 0)
      << "values differ from what Python saved";
}

}  // namespace iis::models::checkpoint::fixtures
