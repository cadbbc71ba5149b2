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

// The kernel's argument block: the problem's geometry and parameters narrowed to int/float (the op
// checks them below 2^29) plus values precomputed on the host (MakeKernelArgs).
struct KernelArgs {
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
__device__ __forceinline__ void AddCorner(const T* __restrict__ image, const KernelArgs& p, int y,
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
                 const T* __restrict__ mask, T* __restrict__ output, KernelArgs p, int64_t total) {
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
        const float px =
            base_x + (static_cast<float>(i * p.dilation_w - p.half_w) + dx) * p.offset_scale;
        const float py =
            base_y + (static_cast<float>(j * p.dilation_h - p.half_h) + dy) * p.offset_scale;
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
std::string Launch(const Dcnv3CudaProblem& pr, const KernelArgs& args, cudaStream_t stream) {
  const Dcnv3Geometry& geo = pr.geometry;
  const int64_t total = geo.batch * geo.height_out * geo.width_out * pr.params.group *
                        (pr.params.group_channels / kVec);
  // Enough blocks to fill any current GPU many times over; the grid-stride loop does the rest.
  const int64_t blocks =
      std::min<int64_t>((total + kThreadsPerBlock - 1) / kThreadsPerBlock, int64_t{1} << 20);
  const T* value = static_cast<const T*>(pr.value);
  const T* offset = static_cast<const T*>(pr.offset);
  const T* mask = static_cast<const T*>(pr.mask);
  T* output = static_cast<T*>(pr.output);
  if (pr.params.mask_is_logits) {
    Dcnv3Forward<T, kVec, true><<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0, stream>>>(
        value, offset, mask, output, args, total);
  } else {
    Dcnv3Forward<T, kVec, false><<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0, stream>>>(
        value, offset, mask, output, args, total);
  }
  return LastErrorMessage("iis::dcnv3 CUDA kernel launch");
}

template <typename T>
std::string LaunchForType(const Dcnv3CudaProblem& pr, const KernelArgs& args, int vec,
                          cudaStream_t stream) {
  switch (vec) {
    case 8:
      if constexpr (sizeof(T) * 8 <= 16) return Launch<T, 8>(pr, args, stream);
      break;
    case 4:
      return Launch<T, 4>(pr, args, stream);
    case 2:
      return Launch<T, 2>(pr, args, stream);
    default:
      break;
  }
  return Launch<T, 1>(pr, args, stream);
}

KernelArgs MakeKernelArgs(const Dcnv3CudaProblem& pr, int vec) {
  const Dcnv3Params& p = pr.params;
  const Dcnv3Geometry& geo = pr.geometry;
  KernelArgs a;
  a.height_in = geo.height_in;
  a.width_in = geo.width_in;
  a.height_out = geo.height_out;
  a.width_out = geo.width_out;
  a.channels = geo.channels;
  a.offset_pixel_stride = geo.offset_pixel_stride;
  a.mask_pixel_stride = geo.mask_pixel_stride;
  a.kernel_h = static_cast<int>(p.kernel_h);
  a.kernel_w = static_cast<int>(p.kernel_w);
  a.stride_h = static_cast<int>(p.stride_h);
  a.stride_w = static_cast<int>(p.stride_w);
  a.pad_h = static_cast<int>(p.pad_h);
  a.pad_w = static_cast<int>(p.pad_w);
  a.dilation_h = static_cast<int>(p.dilation_h);
  a.dilation_w = static_cast<int>(p.dilation_w);
  a.half_h = (a.dilation_h * (a.kernel_h - 1)) >> 1;
  a.half_w = (a.dilation_w * (a.kernel_w - 1)) >> 1;
  a.group = static_cast<int>(p.group);
  a.group_channels = static_cast<int>(p.group_channels);
  a.points = static_cast<int>(p.Points());
  a.chunks = a.group_channels / vec;
  a.offset_scale = static_cast<float>(p.offset_scale);
  a.remove_center = p.remove_center;
  return a;
}

}  // namespace

int Dcnv3ChannelsPerThread(const Dcnv3CudaProblem& problem) {
  const size_t element = ElementSize(problem.dtype);
  for (int vec = static_cast<int>(16 / element); vec > 1; vec /= 2) {
    const size_t bytes = vec * element;
    if (problem.params.group_channels % vec == 0 && Aligned(problem.value, bytes) &&
        Aligned(problem.output, bytes)) {
      return vec;
    }
  }
  return 1;
}

std::string LaunchDcnv3(const Dcnv3CudaProblem& pr, cudaStream_t stream) {
  const int vec = Dcnv3ChannelsPerThread(pr);
  const KernelArgs args = MakeKernelArgs(pr, vec);
  switch (pr.dtype) {
    case Dcnv3Dtype::kFloat32:
      return LaunchForType<float>(pr, args, vec, stream);
    case Dcnv3Dtype::kFloat16:
      return LaunchForType<__half>(pr, args, vec, stream);
    case Dcnv3Dtype::kBFloat16:
      return LaunchForType<__nv_bfloat16>(pr, args, vec, stream);
  }
  return "iis::dcnv3 CUDA kernel: unknown dtype";
}

}  // namespace iis::ops::cuda
