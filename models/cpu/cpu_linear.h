// A fully connected layer for the optimised CPU path: y = x W^T + b with a fused epilogue.
//
// Two backends: oneDNN's matmul primitive (the library LibTorch itself uses on the CPU; compiled
// in when the build finds oneDNN's headers), with the weights reordered once into the primitive's
// preferred layout and bias, GELU or residual sum fused; and ATen (addmm, which goes through the
// BLAS LibTorch was built with, OpenBLAS on Debian). On the 2-core AVX-512 machine oneDNN runs
// InternImage's shapes 2-6x faster (docs/performance.md). The row count M may change between calls.
// Thread-safe: Run may be called concurrently.
#pragma once

#include <memory>

#include <ATen/core/Tensor.h>

namespace iis::models::cpu {

class CpuLinear {
 public:
  enum class Epilogue {
    kBias,            // dst = src W^T + b
    kBiasGelu,        // dst = GELU(src W^T + b), erf form
    kBiasAccumulate,  // dst += src W^T + b  (residual update)
  };
  enum class Backend {
    kDefault,  // oneDNN when compiled in, else ATen
    kOneDnn,
    kAten,
  };

  // weight (N, K) and bias (N), fp32 CPU tensors (copied or reordered: the caller may drop them).
  // Throws c10::Error for bad shapes or when kOneDnn is asked for but not compiled in.
  CpuLinear(const at::Tensor& weight, const at::Tensor& bias, Epilogue epilogue,
            Backend backend = Backend::kDefault);
  ~CpuLinear();
  CpuLinear(CpuLinear&&) noexcept;
  CpuLinear& operator=(CpuLinear&&) noexcept;

  // src: (M, K) fp32 with unit stride along K (any row stride); dst: (M, N) likewise, written (or
  // accumulated into) in place. Throws c10::Error on shape, stride or dtype mismatches.
  void Run(const at::Tensor& src, const at::Tensor& dst) const;

  int64_t in_features() const { return k_; }
  int64_t out_features() const { return n_; }

  // Returns true when the oneDNN backend is compiled in.
  static bool HasOneDnn();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
  int64_t k_ = 0;
  int64_t n_ = 0;
};

}  // namespace iis::models::cpu
