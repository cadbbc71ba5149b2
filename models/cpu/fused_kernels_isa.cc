// Per-ISA bodies of models/cpu/fused_kernels.h (compiled three times, see iis_multiarch_sources).
#include <cmath>
#include <vector>

#include "models/cpu/fused_kernels.h"
#include "models/cpu/simd.h"

namespace iis::models::cpu::IIS_ISA_NAMESPACE {
namespace {

using simd::kLanes;
using simd::VecF;

// Mean and inverse standard deviation of one row (two passes over the data, fp32, like ATen's
// moments up to rounding).
inline void RowMoments(const float* x, int64_t c, float eps, float* mean_out, float* rstd_out) {
  VecF acc = simd::Splat(0.0f);
  int64_t i = 0;
  for (; i + kLanes <= c; i += kLanes) acc += simd::Load(x + i);
  float sum = simd::ReduceAdd(acc);
  for (; i < c; ++i) sum += x[i];
  const float mean = sum / static_cast<float>(c);
  VecF acc2 = simd::Splat(0.0f);
  i = 0;
  for (; i + kLanes <= c; i += kLanes) {
    const VecF d = simd::Load(x + i) - mean;
    acc2 += d * d;
  }
  float sq = simd::ReduceAdd(acc2);
  for (; i < c; ++i) sq += (x[i] - mean) * (x[i] - mean);
  *mean_out = mean;
  *rstd_out = 1.0f / std::sqrt(sq / static_cast<float>(c) + eps);
}

}  // namespace

void LayerNormRows(const float* in, int64_t in_stride, float* out, int64_t out_stride,
                   const LayerNormParams& ln, int64_t begin, int64_t end) {
  const int64_t c = ln.channels;
  for (int64_t r = begin; r < end; ++r) {
    const float* x = in + r * in_stride;
    float* y = out + r * out_stride;
    float mean, rstd;
    RowMoments(x, c, ln.eps, &mean, &rstd);
    int64_t i = 0;
    for (; i + kLanes <= c; i += kLanes) {
      const VecF v = (simd::Load(x + i) - mean) * rstd;
      simd::Store(y + i, v * simd::Load(ln.weight + i) + simd::Load(ln.bias + i));
    }
    for (; i < c; ++i) y[i] = (x[i] - mean) * rstd * ln.weight[i] + ln.bias[i];
  }
}

void AddScaledLayerNormRows(float* x, int64_t x_stride, const float* t, int64_t t_stride,
                            const float* scale, const LayerNormParams& ln, int64_t begin,
                            int64_t end) {
  const int64_t c = ln.channels;
  for (int64_t r = begin; r < end; ++r) {
    const float* tr = t + r * t_stride;
    float* xr = x + r * x_stride;
    float mean, rstd;
    RowMoments(tr, c, ln.eps, &mean, &rstd);
    int64_t i = 0;
    for (; i + kLanes <= c; i += kLanes) {
      VecF n =
          (simd::Load(tr + i) - mean) * rstd * simd::Load(ln.weight + i) + simd::Load(ln.bias + i);
      if (scale != nullptr) n *= simd::Load(scale + i);
      simd::Store(xr + i, simd::Load(xr + i) + n);
    }
    for (; i < c; ++i) {
      float n = (tr[i] - mean) * rstd * ln.weight[i] + ln.bias[i];
      if (scale != nullptr) n *= scale[i];
      xr[i] += n;
    }
  }
}

void DwConvLnGeluRows(const DwConvLnGeluParams& p, int64_t begin, int64_t end) {
  const int64_t c = p.ln.channels;
  const int64_t h = p.height, w = p.width;
  const int k = p.kernel, half = p.kernel / 2;
  const int64_t row_elems = w * c;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t n = r / h, y = r % h;
    const float* image = p.input + n * h * row_elems;
    float* out_row = p.output + r * row_elems;
    for (int64_t x = 0; x < w; ++x) {
      float* acc = out_row + x * c;
      // Convolution: bias + sum over the taps inside the image.
      for (int64_t i = 0; i < c; i += kLanes) {
        if (i + kLanes <= c) {
          simd::Store(acc + i, simd::Load(p.bias + i));
        } else {
          for (int64_t j = i; j < c; ++j) acc[j] = p.bias[j];
        }
      }
      for (int ky = 0; ky < k; ++ky) {
        const int64_t iy = y + ky - half;
        if (iy < 0 || iy >= h) continue;
        for (int kx = 0; kx < k; ++kx) {
          const int64_t ix = x + kx - half;
          if (ix < 0 || ix >= w) continue;
          const float* src = image + iy * row_elems + ix * c;
          const float* wt = p.weight + (ky * k + kx) * c;
          int64_t i = 0;
          for (; i + kLanes <= c; i += kLanes) {
            simd::Store(acc + i, simd::Load(acc + i) + simd::Load(src + i) * simd::Load(wt + i));
          }
          for (; i < c; ++i) acc[i] += src[i] * wt[i];
        }
      }
      // LayerNorm + GELU in place.
      float mean, rstd;
      RowMoments(acc, c, p.ln.eps, &mean, &rstd);
      int64_t i = 0;
      for (; i + kLanes <= c; i += kLanes) {
        const VecF v = (simd::Load(acc + i) - mean) * rstd * simd::Load(p.ln.weight + i) +
                       simd::Load(p.ln.bias + i);
        simd::Store(acc + i, simd::Gelu(v));
      }
      for (; i < c; ++i) {
        acc[i] = simd::GeluScalar((acc[i] - mean) * rstd * p.ln.weight[i] + p.ln.bias[i]);
      }
    }
  }
}

}  // namespace iis::models::cpu::IIS_ISA_NAMESPACE
