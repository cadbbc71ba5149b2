// DCNv3, the deformable convolution operator of InternImage, as LibTorch ops and a C++ API.
//
// Ops (schema in ops/dcnv3.cc; kernels in cpu/dcnv3_cpu.cc and cuda/dcnv3_cuda.cc):
//   iis::dcnv3(Tensor value, Tensor offset, Tensor mask, int kernel_h, int kernel_w, int stride_h,
//              int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, int group,
//              int group_channels, float offset_scale, bool remove_center) -> Tensor
//   iis::dcnv3_softmax(...same...) -> Tensor   (third argument: mask logits, see Dcnv3Softmax)
//
// Semantics (those of the official InternImage CUDA kernel). With G groups of D channels and
// K = kernel_h * kernel_w - remove_center points per group:
//   value  (N, H_in, W_in, G*D), channel g*D + d
//   offset (N, H_out, W_out, G*K*2), channel (g*K + k)*2 + {0: dx (width), 1: dy (height)}
//   mask   (N, H_out, W_out, G*K), channel g*K + k
//   output (N, H_out, W_out, G*D), H_out = (H_in + 2*pad_h - (dilation_h*(kernel_h-1)+1)) /
//          stride_h + 1, likewise W_out.
// Points run x-outer: k = i*kernel_h + j for i < kernel_w, j < kernel_h (with remove_center the
// point i = kernel_w/2, j = kernel_h/2 is skipped, the others keep their order). Point k of
// group g of output pixel (ho, wo) samples, with half_w = (dilation_w*(kernel_w-1)) >> 1,
// half_h likewise and s = offset_scale,
//   px = wo*stride_w - pad_w + half_w + (i*dilation_w - half_w + dx) * s
//   py = ho*stride_h - pad_h + half_h + (j*dilation_h - half_h + dy) * s
// bilinearly (corners outside the image read 0) if -1 < px < W_in and -1 < py < H_in (strict),
// and contributes nothing otherwise; out[..., g*D + d] = sum_k mask[g*K + k] * sample_k[d].
// Half and bfloat16 inputs accumulate in fp32.
//
// Accepted layouts: value dense (contiguous). offset and mask dense, or last-dimension slices of
// one dense tensor (the model's fused offset/mask projection producing G*K*3 channels): last
// dimension stride 1 and N/H/W strides those of a dense tensor with a wider last dimension. The
// output is always dense. Dtypes: float32 on the CPU; float32, float16, bfloat16 on CUDA; the three
// inputs share dtype and device.
//
// Errors: c10::Error (TORCH_CHECK) naming the argument, what was expected and what came, for wrong
// rank, shape, dtype, device or layout and for non-positive sizes/parameters or an empty output.
// Thread-safety: the ops and functions below are reentrant (no shared mutable state).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "ops/dcnv3_shape.h"

namespace iis::ops {

// DCNv3 geometry. InternImage layers use the defaults (3x3, stride 1, pad 1, dilation 1) with
// offset_scale 1.0 (T/S/B/H/G) or 2.0 (L/XL); group and group_channels must always be set.
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

  // Returns K, the number of sampling points per group.
  int64_t Points() const { return kernel_h * kernel_w - (remove_center ? 1 : 0); }
};

// Sizes derived from validated arguments. Strides count elements between consecutive
// (n, h, w) pixels of offset and mask (G*K*2 and G*K when dense).
struct Dcnv3Geometry {
  int64_t batch = 0;
  int64_t height_in = 0;
  int64_t width_in = 0;
  int64_t channels = 0;
  int64_t height_out = 0;
  int64_t width_out = 0;
  int64_t points = 0;
  int64_t offset_pixel_stride = 0;
  int64_t mask_pixel_stride = 0;
};

// Checks everything the kernels rely on except the dtype (device-specific): ranks, shapes,
// devices, layouts, parameters, non-empty output, spatial sizes below 2^24 (fp32 coordinates).
// `op` prefixes the messages ("iis::dcnv3"). Throws c10::Error; returns the derived sizes. Used
// by the device kernels and Dcnv3Composed.
Dcnv3Geometry CheckDcnv3Args(const char* op, const at::Tensor& value, const at::Tensor& offset,
                             const at::Tensor& mask, const Dcnv3Params& params);

// Returns the kernels' description of a problem CheckDcnv3Args accepted (sizes from `geometry`,
// parameters from `params` narrowed to the kernels' int/float).
Dcnv3Shape MakeDcnv3Shape(const Dcnv3Geometry& geometry, const Dcnv3Params& params,
                          bool mask_is_logits);

// Runs iis::dcnv3 through the dispatcher (the CPU or CUDA kernel by device). `mask` holds the
// per-point weights (the official model applies a softmax over K before this op).
at::Tensor Dcnv3(const at::Tensor& value, const at::Tensor& offset, const at::Tensor& mask,
                 const Dcnv3Params& params);

// Runs iis::dcnv3_softmax: as Dcnv3 with mask = softmax over the K points of each group of
// `mask_logits`, computed inside the kernel in fp32 (saves the softmax op and its memory pass).
at::Tensor Dcnv3Softmax(const at::Tensor& value, const at::Tensor& offset,
                        const at::Tensor& mask_logits, const Dcnv3Params& params);

// Computes the same result from ATen ops the way the official pure-PyTorch fallback does (pad,
// sampling grids, grid_sample bilinear/zeros/align_corners=False, multiply by the mask, sum over
// the points), plus remove_center and separate pad_h/pad_w. With mask_is_logits the softmax over
// K is applied first (in fp32). Slow and memory-hungry (materialises N*G*D*H_out*W_out*K
// samples): the benchmark baseline and a cross-check. Works on any device and floating dtype
// that grid_sample supports; same argument checks as the ops.
at::Tensor Dcnv3Composed(const at::Tensor& value, const at::Tensor& offset,
                         const at::Tensor& mask_or_logits, const Dcnv3Params& params,
                         bool mask_is_logits);

}  // namespace iis::ops
