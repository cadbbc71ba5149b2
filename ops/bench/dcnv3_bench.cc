// CPU benchmark of DCNv3: all 30 DCN layers of InternImage-T at 224x224 (stages 56x56x64 G4,
// 28x28x128 G8, 14x14x256 G16, 7x7x512 G32 with 4, 4, 18, 4 layers; kernel 3, stride 1, pad 1,
// D = 16), fp32, batch 1 and 8, 2 threads: iis::dcnv3 and iis::dcnv3_softmax against the composed
// ATen version (the official pure-PyTorch fallback). Every layer has its own inputs, as in a real
// forward pass. Prints ms per image and, at the end, the speed-up of each kernel entry.
//
//   build-*/bin/dcnv3_bench [--benchmark_filter=...]   (IIS_BENCH_THREADS overrides the 2 threads)
//
// On a shared machine, a second thread that another process keeps off its core stalls every
// parallel region of every entry (OpenMP fork-join): compare entries from one quiet run, or use
// IIS_BENCH_THREADS=1.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "ops/bench/internimage_t_layers.h"
#include "ops/cpu/isa.h"
#include "ops/dcnv3.h"

namespace iis::ops {
namespace {

using bench::Layer;

std::vector<Layer> MakeLayers(int64_t batch) {
  return bench::MakeInternImageTLayers(batch, at::TensorOptions().dtype(at::kFloat));
}

enum class Mode { kKernel, kKernelSoftmax, kComposed, kComposedSoftmax };

void BM_InternImageT(benchmark::State& state, Mode mode) {
  const int64_t batch = state.range(0);
  const std::vector<Layer> layers = MakeLayers(batch);
  c10::InferenceMode inference;
  for (auto _ : state) {
    for (const Layer& l : layers) {
      at::Tensor out;
      switch (mode) {
        case Mode::kKernel:
          out = Dcnv3(l.value, l.offset, l.mask, l.params);
          break;
        case Mode::kKernelSoftmax:
          out = Dcnv3Softmax(l.value, l.offset, l.logits, l.params);
          break;
        case Mode::kComposed:
          out = Dcnv3Composed(l.value, l.offset, l.mask, l.params);
          break;
        case Mode::kComposedSoftmax:
          out = Dcnv3Composed(l.value, l.offset, l.logits, l.logits_params);
          break;
      }
      benchmark::DoNotOptimize(out.data_ptr());
    }
  }
  // elapsed / (batch * iterations): time per image for the 30 layers (printed as seconds).
  state.counters["per_image"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
  state.SetLabel(cpu::IsaName(cpu::BestIsa()));
}

// Console output plus, at the end, kernel speed-ups over the composed version per batch size.
class SpeedupReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred || run.run_type != Run::RT_Iteration) continue;
      const auto it = run.counters.find("per_image");
      if (it != run.counters.end()) ms_per_image_[run.benchmark_name()] = 1000.0 * it->second.value;
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nSpeed-up over the composed ATen version (ms per image, 30 layers):\n");
    for (const char* batch : {"1", "8"}) {
      const auto find = [&](const std::string& name) {
        const auto it = ms_per_image_.find(name + "/" + batch + "/real_time");
        return it == ms_per_image_.end() ? 0.0 : it->second;
      };
      const double composed = find("Composed");
      const double composed_softmax = find("ComposedSoftmax");
      const double kernel = find("Kernel");
      const double kernel_softmax = find("KernelSoftmax");
      if (composed > 0 && kernel > 0) {
        std::printf("  batch %s: dcnv3 %.2f ms vs composed %.1f ms: %.1fx\n", batch, kernel,
                    composed, composed / kernel);
      }
      if (composed_softmax > 0 && kernel_softmax > 0) {
        std::printf("  batch %s: dcnv3_softmax %.2f ms vs composed+softmax %.1f ms: %.1fx\n", batch,
                    kernel_softmax, composed_softmax, composed_softmax / kernel_softmax);
      }
    }
  }

 private:
  std::map<std::string, double> ms_per_image_;
};

}  // namespace
}  // namespace iis::ops

int main(int argc, char** argv) {
  using iis::ops::Mode;
#if defined(__GLIBC__)
  // A serving process reaches this state after its first forward passes: glibc raises its mmap
  // and trim thresholds when large activations are freed, so outputs of a few MB come from the
  // heap. Fresh, the first benchmark alone would pay page faults for a new mmap per output.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
#endif
  const char* threads_env = std::getenv("IIS_BENCH_THREADS");
  const int threads = threads_env ? std::atoi(threads_env) : 2;
  at::set_num_threads(threads > 0 ? threads : 2);
  const std::pair<const char*, Mode> modes[] = {{"Kernel", Mode::kKernel},
                                                {"KernelSoftmax", Mode::kKernelSoftmax},
                                                {"Composed", Mode::kComposed},
                                                {"ComposedSoftmax", Mode::kComposedSoftmax}};
  for (const auto& [name, mode] : modes) {
    benchmark::RegisterBenchmark(name, iis::ops::BM_InternImageT, mode)
        ->Arg(1)
        ->Arg(8)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::printf("threads: %d\n", at::get_num_threads());
  iis::ops::SpeedupReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
