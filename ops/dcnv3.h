// DCNv3, the deformable convolution operator of InternImage, as LibTorch ops and a C++ API.
//
// Ops (schema in ops/dcnv3.cc; kernels in cpu/dcnv3_cpu.cc and cuda/dcnv3_cuda.cc, registered
// for both names by RegisterDcnv3Kernels in ops/dcnv3_op.h):
//   iis::dcnv3(Tensor value, Tensor offset, Tensor mask, int kernel_h, int kernel_w, int stride_h,
//              int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, int group,
//              int group_channels, float offset_scale, bool remove_center) -> Tensor
//   iis::dcnv3_softmax(...same, third argument named mask_logits...) -> Tensor   (see Dcnv3)
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

#include "ops/dcnv3_params.h"

namespace iis::ops {

// Checks everything the kernels rely on except the dtype (device-specific): ranks, shapes,
// devices, layouts, parameters, non-empty output, spatial sizes below 2^24 (fp32 coordinates).
// `op` prefixes the messages ("iis::dcnv3"). Throws c10::Error; returns the derived sizes. Used
// by the device kernels and Dcnv3Composed.
Dcnv3Geometry CheckDcnv3Args(const char* op, const at::Tensor& value, const at::Tensor& offset,
                             const at::Tensor& mask, const Dcnv3Params& params);

// Runs the op through the dispatcher (the CPU or CUDA kernel by device): iis::dcnv3, whose `mask`
// holds the per-point weights (the official model applies a softmax over K before this op), or
// with params.mask_is_logits iis::dcnv3_softmax, whose `mask` holds logits: the weights are their
// softmax over the K points of each group, computed inside the kernel in fp32 (saves the softmax
// op and its memory pass).
at::Tensor Dcnv3(const at::Tensor& value, const at::Tensor& offset, const at::Tensor& mask,
                 const Dcnv3Params& params);

// Runs iis::dcnv3_softmax: Dcnv3 with params.mask_is_logits set, whatever `params` says.
at::Tensor Dcnv3Softmax(const at::Tensor& value, const at::Tensor& offset,
                        const at::Tensor& mask_logits, const Dcnv3Params& params);

// Computes the same result from ATen ops the way the official pure-PyTorch fallback does (pad,
// sampling grids, grid_sample bilinear/zeros/align_corners=False, multiply by the mask, sum over
// the points), plus remove_center and separate pad_h/pad_w. With params.mask_is_logits the
// softmax over K is applied first (in fp32). Slow and memory-hungry (materialises
// N*G*D*H_out*W_out*K samples): the benchmark baseline and a cross-check. Works on any device and
// floating dtype that grid_sample supports; same argument checks as the ops.
at::Tensor Dcnv3Composed(const at::Tensor& value, const at::Tensor& offset,
                         const at::Tensor& mask_or_logits, const Dcnv3Params& params);

}  // namespace iis::ops
