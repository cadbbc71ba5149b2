// Load throughput of the checkpoint reader, from the page cache (files read once before timing).
//
//   build-ckpt/bin/checkpoint_bench [--pth=FILE] [--safetensors=FILE] [Google Benchmark flags]
//
// Always runs zlib's CRC-32 (which the zip reader checks every entry with) over 4 MiB and the
// loading of a 256 MiB safetensors file the benchmark writes itself (to $TMPDIR, removed at exit).
// --pth/--safetensors add LoadStateDict on those files, each beside a plain pread of the whole
// file into one buffer: the I/O floor.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <zlib.h>

#include "models/checkpoint/read_only_file.h"
#include "models/checkpoint/state_dict.h"

namespace iis::models::checkpoint {
namespace {

void BM_Crc32(benchmark::State& state) {
  std::string bytes(static_cast<size_t>(state.range(0)), '\0');
  std::mt19937 rng(1);
  for (char& c : bytes) c = static_cast<char>(rng());
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Crc32)->Arg(4 << 20);

// Writes a safetensors file of `count` float32 tensors of `numel` elements each.
void WriteSafetensors(const std::string& path, int count, int64_t numel) {
  std::string header = "{";
  for (int i = 0; i < count; ++i) {
    const int64_t begin = i * numel * 4;
    header += (i ? ",\"" : "\"") + std::string("layer") + std::to_string(i) +
              ".weight\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(numel) +
              "],\"data_offsets\":[" + std::to_string(begin) + "," +
              std::to_string(begin + numel * 4) + "]}";
  }
  header += "}";
  std::ofstream out(path, std::ios::binary);
  const uint64_t size = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((size >> (8 * i)) & 0xFF));
  out << header;
  std::vector<float> values(static_cast<size_t>(numel), 0.5f);
  for (int i = 0; i < count; ++i) {
    out.write(reinterpret_cast<const char*>(values.data()),
              static_cast<std::streamsize>(values.size() * sizeof(float)));
  }
}

void LoadFile(benchmark::State& state, const std::string& path) {
  const uint64_t size = ReadOnlyFile(path).size();
  for (auto _ : state) {
    const StateDict weights = LoadStateDict(path);
    benchmark::DoNotOptimize(weights.size());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

void PreadFile(benchmark::State& state, const std::string& path) {
  const ReadOnlyFile file(path);
  std::vector<char> buffer(file.size());
  for (auto _ : state) {
    file.ReadAt(0, buffer.data(), buffer.size());
    benchmark::DoNotOptimize(buffer.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * file.size()));
}

void RegisterFile(const std::string& label, const std::string& path) {
  benchmark::RegisterBenchmark(("BM_LoadStateDict/" + label).c_str(), LoadFile, path)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("BM_PreadWholeFile/" + label).c_str(), PreadFile, path)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace
}  // namespace iis::models::checkpoint

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const std::string synthetic = (std::filesystem::temp_directory_path() /
                                 ("checkpoint_bench_" + std::to_string(getpid()) + ".safetensors"))
                                    .string();
  iis::models::checkpoint::WriteSafetensors(synthetic, 64, int64_t{1} << 20);  // 64 x 4 MiB
  iis::models::checkpoint::RegisterFile("synthetic_256MiB.safetensors", synthetic);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    bool known = false;
    for (const char* flag : {"--pth=", "--safetensors="}) {
      if (arg.rfind(flag, 0) == 0) {
        const std::string path = arg.substr(std::strlen(flag));
        iis::models::checkpoint::RegisterFile(std::filesystem::path(path).filename().string(),
                                              path);
        known = true;
      }
    }
    if (!known) {
      std::fprintf(stderr,
                   "unknown argument '%s'; expected --pth=FILE, --safetensors=FILE or "
                   "Google Benchmark flags\n",
                   arg.c_str());
      std::filesystem::remove(synthetic);
      return 2;
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::filesystem::remove(synthetic);
  return 0;
}
