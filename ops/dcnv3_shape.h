// The sizes and parameters of one DCNv3 forward problem, shared by the CPU and CUDA kernels'
// problem descriptions (ops/cpu/dcnv3_kernel.h, ops/cuda/dcnv3_kernel.h), which add their
// pointers. No LibTorch headers: the CUDA kernel includes it through nvcc.
//
// Sizes are element counts; every index is computed in int64, so tensors may exceed 2^31
// elements. Preconditions (checked by the op before a kernel runs): all sizes and parameters
// positive (pads >= 0), channels == group * group_channels, height_out/width_out follow the DCNv3
// formula, height_in and width_in < 2^24 (coordinates are fp32).
#pragma once

#include <cstdint>

namespace iis::ops {

struct Dcnv3Shape {
  int64_t batch = 0;
  int64_t height_in = 0;
  int64_t width_in = 0;
  int64_t height_out = 0;
  int64_t width_out = 0;
  // Elements between the offsets (masks) of consecutive output pixels: G*K*2 (G*K) when dense,
  // more for column slices of a wider tensor.
  int64_t offset_pixel_stride = 0;
  int64_t mask_pixel_stride = 0;
  int kernel_h = 3;
  int kernel_w = 3;
  int stride_h = 1;
  int stride_w = 1;
  int pad_h = 1;
  int pad_w = 1;
  int dilation_h = 1;
  int dilation_w = 1;
  int group = 1;
  int group_channels = 1;
  float offset_scale = 1.0f;
  bool remove_center = false;   // Skip the window centre: points = kernel_h * kernel_w - 1.
  bool mask_is_logits = false;  // Apply a softmax over the points of each group to the mask first.
};

}  // namespace iis::ops
