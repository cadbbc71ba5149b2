// CUDA binding of iis::roi_align: checks, device guard, current stream, dtype dispatch, launch of
// ops/cuda/roi_align_kernel.cu. Built only against a LibTorch with CUDA (IIS_TORCH_HAS_CUDA).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>
#include <string>

#include "ops/cuda/roi_align_kernel.h"
#include "ops/roi_align.h"

namespace iis::ops {
namespace {

at::Tensor RoiAlignCuda(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                        int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                        bool aligned) {
  CheckRoiAlignArguments(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio);
  TORCH_CHECK(input.is_cuda(), "iis::roi_align (CUDA kernel): input must be on a CUDA device, got ",
              input.device());
  iis::ops::cuda::RoiAlignDtype dtype;
  switch (input.scalar_type()) {
    case at::kFloat:
      dtype = iis::ops::cuda::RoiAlignDtype::kFloat32;
      break;
    case at::kHalf:
      dtype = iis::ops::cuda::RoiAlignDtype::kFloat16;
      break;
    case at::kBFloat16:
      dtype = iis::ops::cuda::RoiAlignDtype::kBFloat16;
      break;
    default:
      TORCH_CHECK(false, "iis::roi_align: on CUDA input must be float32, float16 or bfloat16, got ",
                  input.scalar_type());
  }
  TORCH_CHECK(rois.scalar_type() == at::kFloat || rois.scalar_type() == input.scalar_type(),
              "iis::roi_align: rois must be float32 or the input's dtype ", input.scalar_type(),
              ", got ", rois.scalar_type());
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  TORCH_CHECK(input.size(1) <= kIntMax && input.size(2) <= kIntMax && input.size(3) <= kIntMax,
              "iis::roi_align: on CUDA channels, height and width must each be below 2^31, got ",
              input.sizes());

  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor in = input.contiguous();
  const at::Tensor boxes = rois.to(at::kFloat).contiguous();
  // The RoI values decide memory accesses: check them on the host (one small synchronising copy).
  CheckRoiValues(boxes.cpu(), in.size(0), spatial_scale, pooled_height, pooled_width,
                 sampling_ratio, aligned);

  at::Tensor output =
      at::empty({boxes.size(0), in.size(1), pooled_height, pooled_width}, in.options());
  if (output.numel() == 0) return output;
  iis::ops::cuda::RoiAlignProblem problem;
  problem.dtype = dtype;
  problem.input = in.data_ptr();
  problem.rois = boxes.data_ptr<float>();
  problem.output = output.data_ptr();
  problem.batch = in.size(0);
  problem.channels = in.size(1);
  problem.height = in.size(2);
  problem.width = in.size(3);
  problem.num_rois = boxes.size(0);
  problem.pooled_height = pooled_height;
  problem.pooled_width = pooled_width;
  problem.sampling_ratio = sampling_ratio;
  problem.spatial_scale = static_cast<float>(spatial_scale);
  problem.aligned = aligned;
  const std::string error =
      iis::ops::cuda::LaunchRoiAlignForward(problem, c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(error.empty(), error);
  return output;
}

}  // namespace

TORCH_LIBRARY_IMPL(iis, CUDA, m) { m.impl("roi_align", &RoiAlignCuda); }

}  // namespace iis::ops
