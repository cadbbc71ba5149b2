// How a prepared model runs: device, precision and, on the CPU, the optimised path. Shared by every
// model family (classification, detection, segmentation). Plain data.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace iis::models {

struct RunOptions {
  at::Device device = at::kCPU;
  // float32, or float16 / bfloat16 on CUDA.
  at::ScalarType dtype = at::kFloat;
  // fp32 CPU only: use InternImageCpuPlan (fused kernels, oneDNN). False runs the ATen reference.
  bool optimized_cpu = true;
};

}  // namespace iis::models
