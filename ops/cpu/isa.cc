#include "ops/cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace iis::ops::cpu {
namespace {

Isa CompiledAndSupported() {
  Isa best = Isa::kBaseline;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
#if defined(IIS_HAVE_ISA_avx2)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::kAvx2;
#endif
#if defined(IIS_HAVE_ISA_avx512)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    best = Isa::kAvx512;
  }
#endif
#endif
  return best;
}

Isa Detect() {
  Isa best = CompiledAndSupported();
  if (const char* env = std::getenv("IIS_CPU_ISA")) {
    Isa wanted = best;
    if (std::strcmp(env, "baseline") == 0) wanted = Isa::kBaseline;
    if (std::strcmp(env, "avx2") == 0) wanted = Isa::kAvx2;
    if (std::strcmp(env, "avx512") == 0) wanted = Isa::kAvx512;
    if (static_cast<int>(wanted) < static_cast<int>(best)) best = wanted;
  }
  return best;
}

std::atomic<int> g_override{static_cast<int>(Isa::kAvx512)};

}  // namespace

Isa BestIsa() {
  static const Isa detected = Detect();
  const int cap = g_override.load(std::memory_order_relaxed);
  return static_cast<int>(detected) < cap ? detected : static_cast<Isa>(cap);
}

ScopedIsaOverride::ScopedIsaOverride(Isa isa)
    : previous_(g_override.exchange(static_cast<int>(isa))) {}

ScopedIsaOverride::~ScopedIsaOverride() { g_override.store(previous_); }

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kBaseline:
      break;
  }
  return "baseline";
}

}  // namespace iis::ops::cpu
