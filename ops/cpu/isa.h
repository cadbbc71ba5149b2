// CPU instruction-set selection for the hand-vectorised kernels.
//
// Hot CPU kernels are compiled once per ISA level (see iis_multiarch_sources in
// cmake/IisHelpers.cmake) into namespaces isa_avx512, isa_avx2 and isa_baseline; callers ask
// BestIsa() which one to run. Thread-safe: the answer is computed once.
#pragma once

namespace iis::ops::cpu {

enum class Isa { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// Returns the widest ISA level that is both compiled into this binary and supported by the CPU.
// The environment variable IIS_CPU_ISA (baseline, avx2 or avx512) lowers the choice, which is how
// tests run every variant on one machine; asking for more than the CPU has is ignored.
Isa BestIsa();

// Returns "baseline", "avx2" or "avx512".
const char* IsaName(Isa isa);

// Test hook: while an instance is alive, BestIsa() answers at most `isa`, so one test binary can
// check every compiled variant. Not meant to be created while kernels run on other threads.
class ScopedIsaOverride {
 public:
  explicit ScopedIsaOverride(Isa isa);
  ~ScopedIsaOverride();
  ScopedIsaOverride(const ScopedIsaOverride&) = delete;
  ScopedIsaOverride& operator=(const ScopedIsaOverride&) = delete;

 private:
  int previous_;
};

}  // namespace iis::ops::cpu
