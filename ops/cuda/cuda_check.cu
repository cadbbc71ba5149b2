#include "ops/cuda/cuda_check.h"

#include <cuda_runtime.h>

namespace iis::ops::cuda {

std::string LastErrorMessage(const char* where) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return {};
  return std::string(where) + ": " + cudaGetErrorString(err);
}

}  // namespace iis::ops::cuda
