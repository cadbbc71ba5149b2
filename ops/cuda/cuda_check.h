// Error handling shared by the CUDA kernel launchers (no LibTorch headers: this compiles with nvcc
// on machines whose LibTorch has no CUDA).
#pragma once

#include <string>

namespace iis::ops::cuda {

// Returns an empty string when the last CUDA call succeeded, otherwise "<where>: <CUDA message>".
// Launchers return this so the LibTorch binding can turn it into a c10::Error.
std::string LastErrorMessage(const char* where);

}  // namespace iis::ops::cuda
