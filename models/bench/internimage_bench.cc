// Benchmarks of the classification forward pass on the CPU, fp32 (Google Benchmark).
//
//   build/bin/internimage_bench                       all cases
//   build/bin/internimage_bench --benchmark_filter=Optimized/8
// Counters: images_per_second, and peak_rss_mb (the process's peak resident set; run one case per
// process, as scripts/bench.sh does, to read it per case).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "models/bench/peak_rss.h"
#include "models/classification/classifier.h"
#include "models/cpu/internimage_cpu_plan.h"
#include "models/layers.h"
#include "models/registry.h"

namespace iis::models {
namespace {

// kind: 0 = optimised plan (oneDNN), 1 = optimised plan with ATen matmuls, 2 = ATen reference.
void BM_InternImageT(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const int kind = static_cast<int>(state.range(1));
  at::set_num_threads(2);
  const Architecture* arch = FindArchitecture("internimage_t_1k_224");
  auto model = std::make_shared<models::backbone::InternImage>(arch->backbone, arch->num_classes);
  InitRandomWeights(*model, 0);
  std::unique_ptr<cpu::InternImageCpuPlan> plan;
  if (kind == 0)
    plan = std::make_unique<cpu::InternImageCpuPlan>(model, cpu::CpuLinear::Backend::kDefault);
  if (kind == 1)
    plan = std::make_unique<cpu::InternImageCpuPlan>(model, cpu::CpuLinear::Backend::kAten);
  at::InferenceMode guard;
  const at::Tensor x = at::randn({batch, 3, 224, 224});
  auto run = [&] { return plan ? plan->ForwardLogits(x) : model->ForwardLogits(x); };
  run();  // warm-up: first-touch allocations, oneDNN kernel generation
  for (auto _ : state) {
    benchmark::DoNotOptimize(run());
  }
  state.counters["images_per_second"] = benchmark::Counter(
      static_cast<double>(batch) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["peak_rss_mb"] = bench::PeakRssMb();
}

BENCHMARK(BM_InternImageT)
    ->ArgNames({"batch", "path"})
    ->Args({1, 0})
    ->Args({8, 0})
    ->Args({1, 1})
    ->Args({8, 1})
    ->Args({1, 2})
    ->Args({8, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(3.0);

}  // namespace
}  // namespace iis::models

BENCHMARK_MAIN();
