// Portable fixed-width SIMD for the multi-ISA CPU kernels of models/cpu/, built on GCC/Clang vector
// extensions. A translation unit compiled by iis_multiarch_sources gets 16 lanes under AVX-512,
// 8 under AVX2 and 4 otherwise; the compiler lowers the operators to native instructions.
// Header-only, no LibTorch. Everything is in the ISA namespace of the including file.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifndef IIS_ISA_NAMESPACE
#error "simd.h is for sources compiled through iis_multiarch_sources"
#endif

namespace iis::models::cpu::IIS_ISA_NAMESPACE::simd {

#if defined(__AVX512F__)
inline constexpr int kLanes = 16;
#elif defined(__AVX2__)
inline constexpr int kLanes = 8;
#else
inline constexpr int kLanes = 4;
#endif

typedef float VecF __attribute__((vector_size(kLanes * 4)));
typedef int32_t VecI __attribute__((vector_size(kLanes * 4)));

inline VecF Load(const float* p) {
  VecF v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void Store(float* p, VecF v) { std::memcpy(p, &v, sizeof(v)); }
inline VecF Splat(float x) { return VecF{} + x; }

inline float ReduceAdd(VecF v) {
  float s = 0.0f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

inline VecF Min(VecF a, VecF b) { return a < b ? a : b; }
inline VecF Max(VecF a, VecF b) { return a > b ? a : b; }
inline VecF Abs(VecF a) { return a < 0 ? -a : a; }

// Round to nearest integer (ties to even under the default rounding mode), as float.
inline VecF RoundNearest(VecF x) {
  const VecF magic = Splat(12582912.0f);  // 1.5 * 2^23
  return (x + magic) - magic;
}

// exp(x) for x in about [-87, 88], ~1 ulp: Cody-Waite reduction by ln2 and a degree-6 polynomial.
inline VecF Exp(VecF x) {
  x = Max(Min(x, Splat(88.3762626647949f)), Splat(-87.3365447504f));
  const VecF n = RoundNearest(x * 1.44269504088896341f);
  VecF r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  VecF p = Splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const VecI e = (__builtin_convertvector(n, VecI) + 127) << 23;
  VecF scale;
  std::memcpy(&scale, &e, sizeof(scale));
  return p * scale;
}

// erf(x) with absolute error below 1.5e-7 (Abramowitz & Stegun 7.1.26), odd-symmetric.
inline VecF Erf(VecF x) {
  const VecF ax = Abs(x);
  const VecF t = 1.0f / (1.0f + 0.3275911f * ax);
  VecF poly = Splat(1.061405429f);
  poly = poly * t - 1.453152027f;
  poly = poly * t + 1.421413741f;
  poly = poly * t - 0.284496736f;
  poly = poly * t + 0.254829592f;
  poly = poly * t;
  const VecF y = 1.0f - poly * Exp(-ax * ax);
  return x < 0 ? -y : y;
}

// GELU with the exact erf form (PyTorch's default nn.GELU()).
inline VecF Gelu(VecF x) { return 0.5f * x * (1.0f + Erf(x * 0.70710678118654752f)); }

inline float GeluScalar(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }

}  // namespace iis::models::cpu::IIS_ISA_NAMESPACE::simd
