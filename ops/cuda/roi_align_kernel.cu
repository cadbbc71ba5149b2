#include "ops/cuda/roi_align_kernel.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "ops/cuda/cuda_check.h"

namespace iis::ops::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ float Load(const T* p);
template <>
__device__ __forceinline__ float Load(const float* p) {
  return *p;
}
template <>
__device__ __forceinline__ float Load(const __half* p) {
  return __half2float(*p);
}
template <>
__device__ __forceinline__ float Load(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}

template <typename T>
__device__ __forceinline__ T Store(float v);
template <>
__device__ __forceinline__ float Store(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half Store(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 Store(float v) {
  return __float2bfloat16_rn(v);
}

// Sampling geometry along one axis, as iis::ops::ComputeRoiAxis computes it.
struct Axis {
  float start;
  float bin_size;
  int grid;
};

__device__ __forceinline__ Axis MakeAxis(float c1, float c2, float scale, int pooled,
                                         int sampling_ratio, bool aligned) {
  const float offset = aligned ? 0.5f : 0.0f;
  Axis axis;
  axis.start = __fsub_rn(__fmul_rn(c1, scale), offset);
  const float end = __fsub_rn(__fmul_rn(c2, scale), offset);
  float extent = __fsub_rn(end, axis.start);
  if (!aligned && extent < 1.0f) extent = 1.0f;
  axis.bin_size = __fdiv_rn(extent, static_cast<float>(pooled));
  if (sampling_ratio > 0) {
    axis.grid = sampling_ratio;
  } else {
    const float grid = ceilf(__fdiv_rn(extent, static_cast<float>(pooled)));
    axis.grid = grid > 0.0f ? static_cast<int>(grid) : 0;
  }
  return axis;
}

// Position of sample i of bin p: start + p * bin + (i + 0.5) * bin / grid, in that order.
__device__ __forceinline__ float SamplePosition(const Axis& axis, int p, int i) {
  return __fadd_rn(__fadd_rn(axis.start, __fmul_rn(static_cast<float>(p), axis.bin_size)),
                   __fdiv_rn(__fmul_rn(static_cast<float>(i) + 0.5f, axis.bin_size),
                             static_cast<float>(axis.grid)));
}

// Bilinear value of `plane` (height, width) at (y, x) with the RoIAlign boundary rule.
template <typename T>
__device__ float Bilinear(const T* plane, int height, int width, float y, float x) {
  if (y < -1.0f || y > static_cast<float>(height) || x < -1.0f || x > static_cast<float>(width)) {
    return 0.0f;
  }
  if (y <= 0.0f) y = 0.0f;
  if (x <= 0.0f) x = 0.0f;
  int y_low = static_cast<int>(y);
  int x_low = static_cast<int>(x);
  int y_high;
  int x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = static_cast<float>(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = static_cast<float>(x_low);
  } else {
    x_high = x_low + 1;
  }
  const float ly = y - static_cast<float>(y_low);
  const float lx = x - static_cast<float>(x_low);
  const float hy = 1.0f - ly;
  const float hx = 1.0f - lx;
  const int64_t row_low = static_cast<int64_t>(y_low) * width;
  const int64_t row_high = static_cast<int64_t>(y_high) * width;
  return hy * hx * Load(plane + row_low + x_low) + hy * lx * Load(plane + row_low + x_high) +
         ly * hx * Load(plane + row_high + x_low) + ly * lx * Load(plane + row_high + x_high);
}

template <typename T>
__global__ void RoiAlignForwardKernel(int64_t total, const T* __restrict__ input,
                                      const float* __restrict__ rois, T* __restrict__ output,
                                      int channels, int height, int width, int pooled_height,
                                      int pooled_width, int sampling_ratio, float spatial_scale,
                                      bool aligned) {
  for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int pw = static_cast<int>(index % pooled_width);
    const int ph = static_cast<int>((index / pooled_width) % pooled_height);
    const int c = static_cast<int>((index / pooled_width / pooled_height) % channels);
    const int64_t k = index / pooled_width / pooled_height / channels;
    const float* roi = rois + k * 5;
    const int64_t b = static_cast<int64_t>(roi[0]);
    const Axis ax = MakeAxis(roi[1], roi[3], spatial_scale, pooled_width, sampling_ratio, aligned);
    const Axis ay = MakeAxis(roi[2], roi[4], spatial_scale, pooled_height, sampling_ratio, aligned);
    const T* plane = input + (b * channels + c) * static_cast<int64_t>(height) * width;
    float sum = 0.0f;
    for (int iy = 0; iy < ay.grid; ++iy) {
      const float y = SamplePosition(ay, ph, iy);
      for (int ix = 0; ix < ax.grid; ++ix) {
        sum += Bilinear(plane, height, width, y, SamplePosition(ax, pw, ix));
      }
    }
    const int64_t samples = static_cast<int64_t>(ay.grid) * ax.grid;
    const float count = static_cast<float>(samples > 1 ? samples : 1);
    output[index] = Store<T>(sum / count);
  }
}

template <typename T>
void Launch(const RoiAlignProblem& p, int64_t total, int blocks, cudaStream_t stream) {
  RoiAlignForwardKernel<T><<<blocks, kThreads, 0, stream>>>(
      total, static_cast<const T*>(p.input), p.rois, static_cast<T*>(p.output),
      static_cast<int>(p.channels), static_cast<int>(p.height), static_cast<int>(p.width),
      static_cast<int>(p.pooled_height), static_cast<int>(p.pooled_width),
      static_cast<int>(p.sampling_ratio), p.spatial_scale, p.aligned);
}

}  // namespace

std::string LaunchRoiAlignForward(const RoiAlignProblem& problem, cudaStream_t stream) {
  const int64_t total =
      problem.num_rois * problem.channels * problem.pooled_height * problem.pooled_width;
  if (total == 0) return {};
  const int blocks =
      static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t{1} << 20));
  switch (problem.dtype) {
    case RoiAlignDtype::kFloat32:
      Launch<float>(problem, total, blocks, stream);
      break;
    case RoiAlignDtype::kFloat16:
      Launch<__half>(problem, total, blocks, stream);
      break;
    case RoiAlignDtype::kBFloat16:
      Launch<__nv_bfloat16>(problem, total, blocks, stream);
      break;
  }
  return LastErrorMessage("iis::roi_align CUDA kernel launch");
}

}  // namespace iis::ops::cuda
