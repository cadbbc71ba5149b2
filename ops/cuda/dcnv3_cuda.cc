// CUDA kernels of iis::dcnv3 and iis::dcnv3_softmax: argument checks, device guard, current
// stream, dtype dispatch and launch of cuda/dcnv3_kernel.cu. Built only against a CUDA LibTorch.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <string>

#include "ops/cuda/dcnv3_kernel.h"
#include "ops/dcnv3.h"

namespace iis::ops::cuda {
namespace {

at::Tensor Dcnv3Cuda(bool softmax, const at::Tensor& value, const at::Tensor& offset,
                     const at::Tensor& mask, int64_t kernel_h, int64_t kernel_w,
                     int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                     int64_t dilation_h, int64_t dilation_w, int64_t group,
                     int64_t group_channels, double offset_scale, bool remove_center) {
  const char* op = softmax ? "iis::dcnv3_softmax" : "iis::dcnv3";
  const ops::Dcnv3Params params{kernel_h,   kernel_w,   stride_h,     stride_w,
                                pad_h,      pad_w,      dilation_h,   dilation_w,
                                group,      group_channels, offset_scale, remove_center};
  const ops::Dcnv3Geometry geo = ops::CheckDcnv3Args(op, value, offset, mask, params);
  TORCH_CHECK(value.is_cuda(), op, ": the CUDA kernel needs CUDA tensors, got ", value.device());
  Dcnv3CudaProblem problem;
  static_cast<ops::Dcnv3Shape&>(problem) = ops::MakeDcnv3Shape(geo, params, softmax);
  switch (value.scalar_type()) {
    case at::kFloat:
      problem.dtype = Dcnv3Dtype::kFloat32;
      break;
    case at::kHalf:
      problem.dtype = Dcnv3Dtype::kFloat16;
      break;
    case at::kBFloat16:
      problem.dtype = Dcnv3Dtype::kBFloat16;
      break;
    default:
      TORCH_CHECK(false, op,
                  ": the CUDA kernel needs float32, float16 or bfloat16 value/offset/mask, got ",
                  value.scalar_type());
  }

  const c10::cuda::CUDAGuard device_guard(value.device());
  at::Tensor output =
      at::empty({geo.batch, geo.height_out, geo.width_out, geo.channels}, value.options());
  problem.value = value.data_ptr();
  problem.offset = offset.data_ptr();
  problem.mask = mask.data_ptr();
  problem.output = output.data_ptr();
  const std::string error = LaunchDcnv3(problem, at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(error.empty(), op, ": ", error);
  return output;
}

at::Tensor Dcnv3Plain(const at::Tensor& value, const at::Tensor& offset, const at::Tensor& mask,
                      int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w,
                      int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w,
                      int64_t group, int64_t group_channels, double offset_scale,
                      bool remove_center) {
  return Dcnv3Cuda(/*softmax=*/false, value, offset, mask, kernel_h, kernel_w, stride_h,
                   stride_w, pad_h, pad_w, dilation_h, dilation_w, group, group_channels,
                   offset_scale, remove_center);
}

at::Tensor Dcnv3Softmax(const at::Tensor& value, const at::Tensor& offset,
                        const at::Tensor& mask_logits, int64_t kernel_h, int64_t kernel_w,
                        int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                        int64_t dilation_h, int64_t dilation_w, int64_t group,
                        int64_t group_channels, double offset_scale, bool remove_center) {
  return Dcnv3Cuda(/*softmax=*/true, value, offset, mask_logits, kernel_h, kernel_w, stride_h,
                   stride_w, pad_h, pad_w, dilation_h, dilation_w, group, group_channels,
                   offset_scale, remove_center);
}

}  // namespace
}  // namespace iis::ops::cuda

TORCH_LIBRARY_IMPL(iis, CUDA, m) {
  m.impl("dcnv3", &iis::ops::cuda::Dcnv3Plain);
  m.impl("dcnv3_softmax", &iis::ops::cuda::Dcnv3Softmax);
}
