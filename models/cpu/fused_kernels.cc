// Dispatch of models/cpu/fused_kernels.h to the best compiled ISA variant.
#include "models/cpu/fused_kernels.h"

#include "ops/cpu/isa.h"

namespace iis::models::cpu {

using ops::cpu::BestIsa;
using ops::cpu::Isa;

#define IIS_DISPATCH(fn, ...)               \
  switch (BestIsa()) {                      \
    IIS_CASE_AVX512(fn, __VA_ARGS__)        \
    IIS_CASE_AVX2(fn, __VA_ARGS__)          \
    default:                                \
      return isa_baseline::fn(__VA_ARGS__); \
  }

#if defined(IIS_HAVE_ISA_avx512)
#define IIS_CASE_AVX512(fn, ...) \
  case Isa::kAvx512:             \
    return isa_avx512::fn(__VA_ARGS__);
#else
#define IIS_CASE_AVX512(fn, ...)
#endif
#if defined(IIS_HAVE_ISA_avx2)
#define IIS_CASE_AVX2(fn, ...) \
  case Isa::kAvx2:             \
    return isa_avx2::fn(__VA_ARGS__);
#else
#define IIS_CASE_AVX2(fn, ...)
#endif

void LayerNormRows(const float* in, int64_t in_stride, float* out, int64_t out_stride,
                   const LayerNormParams& ln, int64_t begin, int64_t end) {
  IIS_DISPATCH(LayerNormRows, in, in_stride, out, out_stride, ln, begin, end)
}

void AddScaledLayerNormRows(float* x, int64_t x_stride, const float* t, int64_t t_stride,
                            const float* scale, const LayerNormParams& ln, int64_t begin,
                            int64_t end) {
  IIS_DISPATCH(AddScaledLayerNormRows, x, x_stride, t, t_stride, scale, ln, begin, end)
}

void DwConvLnGeluRows(const DwConvLnGeluParams& p, int64_t begin, int64_t end) {
  IIS_DISPATCH(DwConvLnGeluRows, p, begin, end)
}

}  // namespace iis::models::cpu
