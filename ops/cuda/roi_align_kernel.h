// CUDA kernel of iis::roi_align on raw device pointers (no LibTorch headers: this compiles with
// nvcc wherever it is installed; ops/cuda/roi_align_cuda.cc binds it to the dispatcher).
//
// One thread per output element (k, c, ph, pw) walks its bin's sample grid. Geometry and sample
// positions use round-to-nearest intrinsics in the exact order of the CPU kernel (no FMA
// contraction), so both place every sample identically; the bilinear sums are accumulated in
// float32 for every input dtype and may round slightly differently from the CPU.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace iis::ops::cuda {

enum class RoiAlignDtype { kFloat32, kFloat16, kBFloat16 };

// One RoIAlign forward problem (semantics: the comment of iis::ops::RoiAlign in ops/roi_align.h).
// Preconditions (checked by the caller, not here): sizes positive except num_rois, pooled sizes
// and per-axis sample counts bounded as iis::ops::CheckRoiValues enforces, every RoI finite with
// a batch index in [0, batch), spatial_scale finite and positive.
struct RoiAlignProblem {
  RoiAlignDtype dtype = RoiAlignDtype::kFloat32;
  const void* input = nullptr;  // (batch, channels, height, width) of `dtype`, dense
  const float* rois = nullptr;  // (num_rois, 5) float32 [batch_index, x1, y1, x2, y2], dense
  void* output = nullptr;       // (num_rois, channels, pooled_height, pooled_width) of `dtype`
  int64_t batch = 0;
  int64_t channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t num_rois = 0;
  int64_t pooled_height = 1;
  int64_t pooled_width = 1;
  int64_t sampling_ratio = 0;
  float spatial_scale = 1.0f;
  bool aligned = true;
};

// Enqueues the kernel on `stream` and returns "" on success, otherwise the CUDA error message.
// Writes every output element. Not synchronising; thread-safe.
std::string LaunchRoiAlignForward(const RoiAlignProblem& problem, cudaStream_t stream);

}  // namespace iis::ops::cuda
