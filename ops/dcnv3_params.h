// The parameters of a DCNv3 forward (Dcnv3Params: what the ops' schema arguments say, from the
// schema to the kernels) and the sizes derived from its tensors (Dcnv3Geometry). Semantics: the
// comment of iis::ops::Dcnv3 in ops/dcnv3.h. No LibTorch headers: the CPU kernel (compiled once
// per ISA) and the CUDA kernel (through nvcc) include it.
#pragma once

#include <cstdint>

namespace iis::ops {

// DCNv3 parameters. InternImage layers use the defaults (3x3, stride 1, pad 1, dilation 1) with
// offset_scale 1.0 (T/S/B/H/G) or 2.0 (L/XL); group and group_channels must always be set.
// Preconditions the ops check before a kernel runs (CheckDcnv3Args in ops/dcnv3.h): sizes, strides,
// dilations, group and group_channels in [1, 2^29), pads in [0, 2^29), offset_scale finite,
// remove_center only with more than one point.
struct Dcnv3Params {
  int64_t kernel_h = 3;
  int64_t kernel_w = 3;
  int64_t stride_h = 1;
  int64_t stride_w = 1;
  int64_t pad_h = 1;
  int64_t pad_w = 1;
  int64_t dilation_h = 1;
  int64_t dilation_w = 1;
  int64_t group = 0;           // G, required (> 0).
  int64_t group_channels = 0;  // D, required (> 0); value has G*D channels.
  double offset_scale = 1.0;   // Scales both the regular grid and the learned offsets.
  bool remove_center = false;  // Drop the window centre point: K = kernel_h*kernel_w - 1.
  // The mask holds logits: a softmax over the K points of each group is applied to it first (in
  // fp32, inside the kernel). Not a schema argument: true for iis::dcnv3_softmax, false for
  // iis::dcnv3.
  bool mask_is_logits = false;

  // Returns K, the number of sampling points per group.
  constexpr int64_t Points() const { return kernel_h * kernel_w - (remove_center ? 1 : 0); }
};

// Sizes derived from validated arguments (element counts). Strides count elements between
// consecutive (n, h, w) pixels of offset and mask: G*K*2 and G*K when dense, more for column
// slices of a wider tensor. Every index the kernels compute from them is int64.
struct Dcnv3Geometry {
  int64_t batch = 0;
  int64_t height_in = 0;   // Below 2^24: sampling coordinates are fp32.
  int64_t width_in = 0;    // Below 2^24.
  int64_t channels = 0;    // group * group_channels.
  int64_t height_out = 0;  // (height_in + 2*pad_h - (dilation_h*(kernel_h-1)+1)) / stride_h + 1.
  int64_t width_out = 0;   // Likewise.
  int64_t points = 0;      // K = Dcnv3Params::Points().
  int64_t offset_pixel_stride = 0;
  int64_t mask_pixel_stride = 0;
};

}  // namespace iis::ops
