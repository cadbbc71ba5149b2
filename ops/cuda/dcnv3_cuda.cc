// CUDA kernel of iis::dcnv3 and iis::dcnv3_softmax: argument checks, device guard, current
// stream, dtype dispatch and launch of cuda/dcnv3_kernel.cu. Built only against a CUDA LibTorch.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <string>

#include "ops/cuda/dcnv3_kernel.h"
#include "ops/dcnv3.h"
#include "ops/dcnv3_op.h"

namespace iis::ops::cuda {
namespace {

at::Tensor Dcnv3Cuda(const at::Tensor& value, const at::Tensor& offset, const at::Tensor& mask,
                     const Dcnv3Params& params) {
  const char* op = Dcnv3OpName(params);
  const Dcnv3Geometry geo = CheckDcnv3Args(op, value, offset, mask, params);
  TORCH_CHECK(value.is_cuda(), op, ": the CUDA kernel needs CUDA tensors, got ", value.device());
  Dcnv3CudaProblem problem;
  problem.params = params;
  problem.geometry = geo;
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

}  // namespace
}  // namespace iis::ops::cuda

TORCH_LIBRARY_IMPL(iis, CUDA, m) { iis::ops::RegisterDcnv3Kernels<&iis::ops::cuda::Dcnv3Cuda>(m); }
