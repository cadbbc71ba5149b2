// Test helper: compares a loaded tensor with what make_fixtures.py recorded for it.
#pragma once

#include <ATen/core/Tensor.h>

#include "models/checkpoint/testing/python_fixtures.h"

namespace iis::models::checkpoint::fixtures {

// Expects `tensor` to be a CPU tensor with the recorded dtype, sizes, strides and storage offset,
// whose values are bit-for-bit the recorded bytes.
void ExpectSameTensor(const at::Tensor& tensor, const ExpectedTensor& expected);

// Returns the dtype torch calls `name` ("float32", "bfloat16", ...).
at::ScalarType DtypeFromPythonName(const std::string& name);

}  // namespace iis::models::checkpoint::fixtures
