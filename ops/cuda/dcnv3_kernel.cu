// DCNv3 forward on CUDA (see ops/cuda/dcnv3_kernel.h).
#include "ops/cuda/dcnv3_kernel.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/cuda_check.h"

namespace iis::ops::cuda {
namespace {

constexpr int kThreadsPerBlock = 256;

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// kVec consecutive channels moved with one load/store instruction.
template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) Pack {
  T v[kVec];
};

// Sizes and parameters in the form the kernel reads (precomputed on the host).
struct Params {
  int64_t height_in, width_in, height_out, width_out;
  int64_t channels;
  int64_t offset_pixel_stride, mask_pixel_stride;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int half_h, half_w;
  int group, group_channels, points;
  int chunks;  // group_channels / kVec: threads per (pixel, group)
  float offset_scale;
  bool remove_center;
};

// Adds weight * value[y, x, chunk] to acc when the corner lies inside the image.
template <typename T, int kVec>
__device__ __forceinline__ void AddCorner(const T* __restrict__ image, const Params& p, int y,
                                          int x, float weight, float (&acc)[kVec]) {
  if (y < 0 || x < 0 || y >= p.height_in || x >= p.width_in) return;
  const Pack<T, kVec> pack = *reinterpret_cast<const Pack<T, kVec>*>(
      image + (static_cast<int64_t>(y) * p.width_in + x) * p.channels);
#pragma unroll
  for (int c = 0; c < kVec; ++c) acc[c] += weight * ToFloat(pack.v[c]);
}

// One thread per (output pixel, group, chunk of kVec channels); a grid-stride loop covers any
// size with int64 indices.
template <typename T, int kVec, bool kLogits>
__global__ void __launch_bounds__(kThreadsPerBlock)
    Dcnv3Forward(const T* __restrict__ value, const T* __restrict__ offset,
                 const T* __restrict__ mask, T* __restrict__ output, Params p, int64_t total) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; tid < total;
       tid += step) {
    const int chunk = static_cast<int>(tid % p.chunks);
    const int64_t pixel_group = tid / p.chunks;
    const int g = static_cast<int>(pixel_group % p.group);
    const int64_t pixel = pixel_group / p.group;
    const int64_t wo = pixel % p.width_out;
    const int64_t row = pixel / p.width_out;
    const int64_t ho = row % p.height_out;
    const int64_t n = row / p.height_out;

    const T* off = offset + pixel * p.offset_pixel_stride + static_cast<int64_t>(g) * p.points * 2;
    const T* msk = mask + pixel * p.mask_pixel_stride + static_cast<int64_t>(g) * p.points;
    const int channel0 = g * p.group_channels + chunk * kVec;
    const T* image = value + n * p.height_in * p.width_in * p.channels + channel0;

    // Softmax over the group's K logits: running max and rescaled sum in one pass.
    float max_logit = 0.0f;
    float inverse_sum = 1.0f;
    if (kLogits) {
      max_logit = -INFINITY;
      float sum = 0.0f;
      for (int k = 0; k < p.points; ++k) {
        const float l = ToFloat(msk[k]);
        if (l > max_logit) {
          sum = sum * expf(max_logit - l) + 1.0f;
          max_logit = l;
        } else {
          sum += expf(l - max_logit);
        }
      }
      inverse_sum = 1.0f / sum;
    }

    const float base_x = static_cast<float>(wo * p.stride_w - p.pad_w + p.half_w);
    const float base_y = static_cast<float>(ho * p.stride_h - p.pad_h + p.half_h);
    const float width = static_cast<float>(p.width_in);
    const float height = static_cast<float>(p.height_in);
    float acc[kVec];
#pragma unroll
    for (int c = 0; c < kVec; ++c) acc[c] = 0.0f;

    int k = 0;
    for (int i = 0; i < p.kernel_w; ++i) {
      for (int j = 0; j < p.kernel_h; ++j) {
        if (p.remove_center && i == p.kernel_w / 2 && j == p.kernel_h / 2) continue;
        const float dx = ToFloat(off[2 * k]);
        const float dy = ToFloat(off[2 * k + 1]);
        const float raw = ToFloat(msk[k]);
        ++k;
        const float px = base_x + (static_cast<float>(i * p.dilation_w - p.half_w) + dx) * p.offset_scale;
        const float py = base_y + (static_cast<float>(j * p.dilation_h - p.half_h) + dy) * p.offset_scale;
        if (!(px > -1.0f && px < width && py > -1.0f && py < height)) continue;
        const float m = kLogits ? expf(raw - max_logit) * inverse_sum : raw;
        const float fx = floorf(px);
        const float fy = floorf(py);
        const int x0 = static_cast<int>(fx);
        const int y0 = static_cast<int>(fy);
        const float lx = px - fx;
        const float ly = py - fy;
        const float top = m * (1.0f - ly);
        const float bottom = m * ly;
        AddCorner<T, kVec>(image, p, y0, x0, top * (1.0f - lx), acc);
        AddCorner<T, kVec>(image, p, y0, x0 + 1, top * lx, acc);
        AddCorner<T, kVec>(image, p, y0 + 1, x0, bottom * (1.0f - lx), acc);
        AddCorner<T, kVec>(image, p, y0 + 1, x0 + 1, bottom * lx, acc);
      }
    }

    Pack<T, kVec> out;
#pragma unroll
    for (int c = 0; c < kVec; ++c) out.v[c] = FromFloat<T>(acc[c]);
    *reinterpret_cast<Pack<T, kVec>*>(output + pixel * p.channels + channel0) = out;
  }
}

size_t ElementSize(Dcnv3Dtype dtype) { return dtype == Dcnv3Dtype::kFloat32 ? 4 : 2; }

bool Aligned(const void* ptr, size_t bytes) {
  return reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
}

template <typename T, int kVec>
std::string Launch(const Dcnv3CudaProblem& pr, const Params& params, cudaStream_t stream) {
  const int64_t total =
      pr.batch * pr.height_out * pr.width_out * pr.group * (pr.group_channels / kVec);
  // Enough blocks to fill any current GPU many times over; the grid-stride loop does the rest.
  const int64_t blocks =
      std::min<int64_t>((total + kThreadsPerBlock - 1) / kThreadsPerBlock, int64_t{1} << 20);
  const T* value = static_cast<const T*>(pr.value);
  const T* offset = static_cast<const T*>(pr.offset);
  const T* mask = static_cast<const T*>(pr.mask);
  T* output = static_cast<T*>(pr.output);
  if (pr.mask_is_logits) {
    Dcnv3Forward<T, kVec, true><<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0, stream>>>(
        value, offset, mask, output, params, total);
  } else {
    Dcnv3Forward<T, kVec, false><<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0, stream>>>(
        value, offset, mask, output, params, total);
  }
  return LastErrorMessage("iis::dcnv3 CUDA kernel launch");
}

template <typename T>
std::string LaunchForType(const Dcnv3CudaProblem& pr, const Params& params, int vec,
                          cudaStream_t stream) {
  switch (vec) {
    case 8:
      if constexpr (sizeof(T) * 8 <= 16) return Launch<T, 8>(pr, params, stream);
      break;
    case 4:
      return Launch<T, 4>(pr, params, stream);
    case 2:
      return Launch<T, 2>(pr, params, stream);
    default:
      break;
  }
  return Launch<T, 1>(pr, params, stream);
}

}  // namespace

int Dcnv3ChannelsPerThread(const Dcnv3CudaProblem& problem) {
  const size_t element = ElementSize(problem.dtype);
  for (int vec = static_cast<int>(16 / element); vec > 1; vec /= 2) {
    const size_t bytes = vec * element;
    if (problem.group_channels % vec == 0 && Aligned(problem.value, bytes) &&
        Aligned(problem.output, bytes)) {
      return vec;
    }
  }
  return 1;
}

std::string LaunchDcnv3(const Dcnv3CudaProblem& pr, cudaStream_t stream) {
  const int vec = Dcnv3ChannelsPerThread(pr);
  Params params;
  params.height_in = pr.height_in;
  params.width_in = pr.width_in;
  params.height_out = pr.height_out;
  params.width_out = pr.width_out;
  params.channels = static_cast<int64_t>(pr.group) * pr.group_channels;
  params.offset_pixel_stride = pr.offset_pixel_stride;
  params.mask_pixel_stride = pr.mask_pixel_stride;
  params.kernel_h = pr.kernel_h;
  params.kernel_w = pr.kernel_w;
  params.stride_h = pr.stride_h;
  params.stride_w = pr.stride_w;
  params.pad_h = pr.pad_h;
  params.pad_w = pr.pad_w;
  params.dilation_h = pr.dilation_h;
  params.dilation_w = pr.dilation_w;
  params.half_h = (pr.dilation_h * (pr.kernel_h - 1)) >> 1;
  params.half_w = (pr.dilation_w * (pr.kernel_w - 1)) >> 1;
  params.group = pr.group;
  params.group_channels = pr.group_channels;
  params.points = pr.kernel_h * pr.kernel_w - (pr.remove_center ? 1 : 0);
  params.chunks = pr.group_channels / vec;
  params.offset_scale = pr.offset_scale;
  params.remove_center = pr.remove_center;
  switch (pr.dtype) {
    case Dcnv3Dtype::kFloat32:
      return LaunchForType<float>(pr, params, vec, stream);
    case Dcnv3Dtype::kFloat16:
      return LaunchForType<__half>(pr, params, vec, stream);
    case Dcnv3Dtype::kBFloat16:
      return LaunchForType<__nv_bfloat16>(pr, params, vec, stream);
  }
  return "iis::dcnv3 CUDA kernel: unknown dtype";
}

}  // namespace iis::ops::cuda
