// CPU kernel of iis::dcnv3 and iis::dcnv3_softmax: argument checks, ISA choice, row-parallel
// launch of the raw-pointer kernel in cpu/dcnv3_kernel.cc.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>

#include "ops/cpu/dcnv3_kernel.h"
#include "ops/cpu/isa.h"
#include "ops/dcnv3.h"
#include "ops/dcnv3_op.h"

namespace iis::ops::cpu {

Dcnv3Kernel SelectDcnv3Kernel() {
  // BestIsa() only answers levels that are compiled in and supported by the CPU.
  [[maybe_unused]] const Isa isa = BestIsa();
#if defined(IIS_HAVE_ISA_avx512)
  if (isa == Isa::kAvx512) return {isa_avx512::Dcnv3PadRows, isa_avx512::Dcnv3ForwardRows};
#endif
#if defined(IIS_HAVE_ISA_avx2)
  if (isa == Isa::kAvx2) return {isa_avx2::Dcnv3PadRows, isa_avx2::Dcnv3ForwardRows};
#endif
  return {isa_baseline::Dcnv3PadRows, isa_baseline::Dcnv3ForwardRows};
}

void Dcnv3Exp(const float* in, float* out, int64_t n) {
  [[maybe_unused]] const Isa isa = BestIsa();
#if defined(IIS_HAVE_ISA_avx512)
  if (isa == Isa::kAvx512) return isa_avx512::Dcnv3Exp(in, out, n);
#endif
#if defined(IIS_HAVE_ISA_avx2)
  if (isa == Isa::kAvx2) return isa_avx2::Dcnv3Exp(in, out, n);
#endif
  isa_baseline::Dcnv3Exp(in, out, n);
}

namespace {

// Work below which a thread is not worth waking: about this many multiply-adds per task, or
// bytes copied per task.
constexpr int64_t kMinFmasPerTask = 1 << 15;
constexpr int64_t kMinBytesPerTask = 1 << 18;

at::Tensor Dcnv3Cpu(const at::Tensor& value, const at::Tensor& offset, const at::Tensor& mask,
                    const Dcnv3Params& params) {
  const char* op = Dcnv3OpName(params);
  const Dcnv3Geometry geo = CheckDcnv3Args(op, value, offset, mask, params);
  TORCH_CHECK(value.scalar_type() == at::kFloat, op,
              ": the CPU kernel needs float32 value/offset/mask, got ", value.scalar_type());

  at::Tensor output =
      at::empty({geo.batch, geo.height_out, geo.width_out, geo.channels}, value.options());
  Dcnv3Problem problem;
  problem.params = params;
  problem.geometry = geo;
  problem.value = value.data_ptr<float>();
  problem.offset = offset.data_ptr<float>();
  problem.mask = mask.data_ptr<float>();
  problem.output = output.data_ptr<float>();

  // The zero-bordered copy of value the kernel gathers from (one pass, memory-bound).
  at::Tensor padded = at::empty({Dcnv3PaddedElements(problem)}, value.options());
  problem.padded_value = padded.data_ptr<float>();
  const Dcnv3Kernel kernel = SelectDcnv3Kernel();
  const int64_t padded_rows = geo.batch * Dcnv3PaddedRowsPerImage(problem);
  const int64_t bytes_per_padded_row = (geo.width_in + 2) * geo.channels * 4;
  at::parallel_for(0, padded_rows, std::max<int64_t>(1, kMinBytesPerTask / bytes_per_padded_row),
                   [&](int64_t begin, int64_t end) { kernel.pad_rows(problem, begin, end); });
  // Rows (image, output row) are independent: split them so small late stages (7x7) and batch 1
  // still keep every thread busy, but never wake a thread for a handful of multiply-adds.
  const int64_t rows = geo.batch * geo.height_out;
  const int64_t fmas_per_row = geo.width_out * geo.channels * geo.points * 4;
  at::parallel_for(0, rows, std::max<int64_t>(1, kMinFmasPerTask / fmas_per_row),
                   [&](int64_t begin, int64_t end) { kernel.forward_rows(problem, begin, end); });
  return output;
}

}  // namespace
}  // namespace iis::ops::cpu

TORCH_LIBRARY_IMPL(iis, CPU, m) { iis::ops::RegisterDcnv3Kernels<&iis::ops::cpu::Dcnv3Cpu>(m); }
