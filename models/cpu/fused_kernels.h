// Fused elementwise/normalisation kernels of the optimised InternImage CPU path, on raw fp32
// pointers (no LibTorch headers). fused_kernels.cc is compiled once per ISA
// (iis_multiarch_sources); the functions below dispatch with iis::ops::cpu::BestIsa() and process a
// range of rows, so callers split work over threads by rows. Rows are channel vectors of length C,
// contiguous, `stride` floats apart (stride >= C). All functions are thread-safe for disjoint rows.
#pragma once

#include <cstdint>

namespace iis::models::cpu {

struct LayerNormParams {
  const float* weight = nullptr;  // (C)
  const float* bias = nullptr;    // (C)
  int64_t channels = 0;
  float eps = 1e-6f;
};

// out[r] = LayerNorm(in[r]) for r in [begin, end). `in` and `out` may alias.
void LayerNormRows(const float* in, int64_t in_stride, float* out, int64_t out_stride,
                   const LayerNormParams& ln, int64_t begin, int64_t end);

// x[r] += scale * LayerNorm(t[r]) for r in [begin, end); `scale` (C) may be null (= 1). This is
// the residual update of the post-norm blocks: x = x + gamma * norm(branch).
void AddScaledLayerNormRows(float* x, int64_t x_stride, const float* t, int64_t t_stride,
                            const float* scale, const LayerNormParams& ln, int64_t begin,
                            int64_t end);

// The `dw_conv` branch of a DCNv3 mixer on channels-last data: depthwise k x k convolution
// (stride 1, zero padding k/2, with bias), then LayerNorm over channels, then GELU (erf form).
struct DwConvLnGeluParams {
  const float* input = nullptr;   // (N, H, W, C) dense
  float* output = nullptr;        // (N, H, W, C) dense
  const float* weight = nullptr;  // (k, k, C): tap-major, repacked from PyTorch's (C, 1, k, k)
  const float* bias = nullptr;    // (C)
  LayerNormParams ln;
  int64_t height = 0;
  int64_t width = 0;
  int kernel = 3;
};
// Computes output rows [begin, end), row r being image r / H, image row r % H.
void DwConvLnGeluRows(const DwConvLnGeluParams& p, int64_t begin, int64_t end);

// Per-ISA variants (only those compiled in are defined).
#define IIS_FUSED_KERNELS_DECLARE(ns)                                                       \
  namespace ns {                                                                            \
  void LayerNormRows(const float* in, int64_t in_stride, float* out, int64_t out_stride,    \
                     const LayerNormParams& ln, int64_t begin, int64_t end);                \
  void AddScaledLayerNormRows(float* x, int64_t x_stride, const float* t, int64_t t_stride, \
                              const float* scale, const LayerNormParams& ln, int64_t begin, \
                              int64_t end);                                                 \
  void DwConvLnGeluRows(const DwConvLnGeluParams& p, int64_t begin, int64_t end);           \
  }
IIS_FUSED_KERNELS_DECLARE(isa_avx512)
IIS_FUSED_KERNELS_DECLARE(isa_avx2)
IIS_FUSED_KERNELS_DECLARE(isa_baseline)
#undef IIS_FUSED_KERNELS_DECLARE

}  // namespace iis::models::cpu
