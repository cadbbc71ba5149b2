// Tests of the CUDA kernels of iis::dcnv3 / iis::dcnv3_softmax (label gpu): fp32, fp16 and bf16
// against the CPU kernel run on the same (rounded) inputs, and fp32 against the double-precision
// reference. Output blocks are NaN-poisoned first so every element is proven written. Uses no CUDA
// headers, so it builds against any LibTorch (CPU-only CI proves it compiles); every test skips
// when no CUDA device is present.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "ops/dcnv3.h"
#include "ops/ops_registry.h"
#include "ops/testing/dcnv3_reference.h"

namespace iis::ops {
namespace {

using testing_support::Dcnv3Reference;
using testing_support::WithLogits;

class Dcnv3CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  }
};

int64_t OutSize(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  return (in + 2 * pad - (dilation * (kernel - 1) + 1)) / stride + 1;
}

// Fills and frees a block of the caching allocator of the output's size with NaN, so a kernel that
// skipped an element would leave NaN behind in the block it is then handed.
void PoisonNextAllocation(at::IntArrayRef sizes, at::ScalarType dtype) {
  const at::Tensor poison = at::full(sizes, std::numeric_limits<float>::quiet_NaN(),
                                     at::TensorOptions().dtype(dtype).device(at::kCUDA));
}

using GpuCase = testing_support::Dcnv3TestCase;
using testing_support::Geometry;

std::vector<GpuCase> GpuCases() {
  return {
      {"InternImageLayer", 2, 14, 14, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 16), 2.0},
      {"Channels32", 1, 9, 11, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 2, 32), 2.0},
      {"Channels12", 1, 7, 6, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 3, 12), 2.0},
      {"Channels3Groups7", 1, 5, 6, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 7, 3), 2.0},
      {"Kernel5x5Stride2Dilation2", 1, 13, 12, Geometry(5, 5, 2, 2, 2, 2, 2, 2, 2, 8, 0.5), 3.0},
      {"Kernel3x5RemoveCenterScale2", 2, 8, 9, Geometry(3, 5, 1, 1, 1, 2, 1, 1, 4, 16, 2.0, true),
       2.0},
      {"FarOffsets", 1, 6, 5, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 16), 9.0},
      {"Batch300", 300, 3, 4, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 2, 8), 2.0},
  };
}

// Max |a - b| relative to the largest |b| (the output scale).
double ScaledError(const at::Tensor& a, const at::Tensor& b) {
  const double scale = std::max(1e-30, b.abs().max().item<double>());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() / scale;
}

TEST_F(Dcnv3CudaTest, KernelsAreRegistered) {
  EXPECT_TRUE(HasCudaKernel("iis::dcnv3"));
  EXPECT_TRUE(HasCudaKernel("iis::dcnv3_softmax"));
}

TEST_F(Dcnv3CudaTest, MatchesCpuForEveryDtype) {
  struct DtypeTolerance {
    at::ScalarType dtype;
    double tolerance;  // Of the output scale: the output rounding of the dtype plus margin.
  };
  const DtypeTolerance dtypes[] = {{at::kFloat, 1e-5}, {at::kHalf, 2e-3}, {at::kBFloat16, 1.6e-2}};
  for (const GpuCase& c : GpuCases()) {
    const Dcnv3Params& p = c.params;
    const int64_t h_out = OutSize(c.h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h);
    const int64_t w_out = OutSize(c.w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w);
    const int64_t gk = p.group * p.Points();
    at::manual_seed(11);
    const at::Tensor value = at::randn({c.n, c.h, c.w, p.group * p.group_channels});
    const at::Tensor offset = (at::rand({c.n, h_out, w_out, gk * 2}) * 2 - 1) * c.offset_range;
    const at::Tensor logits = at::randn({c.n, h_out, w_out, gk}) * 2;
    const at::Tensor mask = at::rand({c.n, h_out, w_out, gk});
    for (const DtypeTolerance& dt : dtypes) {
      for (bool softmax : {false, true}) {
        const std::string what =
            c.name + " " + c10::toString(dt.dtype) + (softmax ? " softmax" : " plain");
        // Both devices see the inputs rounded to the dtype; the CPU computes in fp32.
        const at::Tensor v = value.to(dt.dtype);
        const at::Tensor o = offset.to(dt.dtype);
        const at::Tensor m = (softmax ? logits : mask).to(dt.dtype);
        const at::Tensor expected =
            softmax ? Dcnv3Softmax(v.to(at::kFloat), o.to(at::kFloat), m.to(at::kFloat), p)
                    : Dcnv3(v.to(at::kFloat), o.to(at::kFloat), m.to(at::kFloat), p);
        const at::Tensor vg = v.cuda(), og = o.cuda(), mg = m.cuda();
        PoisonNextAllocation(expected.sizes(), dt.dtype);
        const at::Tensor out = softmax ? Dcnv3Softmax(vg, og, mg, p) : Dcnv3(vg, og, mg, p);
        ASSERT_EQ(out.scalar_type(), dt.dtype) << what;
        ASSERT_TRUE(out.is_cuda()) << what;
        ASSERT_TRUE(out.is_contiguous()) << what;
        const at::Tensor got = out.cpu().to(at::kFloat);
        ASSERT_TRUE(at::isfinite(got).all().item<bool>()) << what << ": unwritten (NaN) elements";
        EXPECT_LE(ScaledError(got, expected), dt.tolerance) << what;
        if (dt.dtype == at::kFloat) {
          const at::Tensor reference =
              Dcnv3Reference(value, offset, softmax ? logits : mask, WithLogits(p, softmax));
          EXPECT_LE(ScaledError(got, reference), 1e-5) << what << " vs reference";
        }
      }
    }
  }
}

TEST_F(Dcnv3CudaTest, AcceptsColumnViewsOfOneFusedTensor) {
  const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 16);
  const int64_t gk = 4 * p.Points();
  for (at::ScalarType dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
    const auto opts = at::TensorOptions().dtype(dtype).device(at::kCUDA);
    at::manual_seed(3);
    const at::Tensor value = at::randn({2, 7, 8, 64}, opts);
    const at::Tensor fused = at::randn({2, 7, 8, gk * 3}, opts);
    const at::Tensor offset = fused.narrow(3, 0, gk * 2);
    const at::Tensor mask = fused.narrow(3, gk * 2, gk);
    for (bool softmax : {false, true}) {
      const at::Tensor viewed =
          softmax ? Dcnv3Softmax(value, offset, mask, p) : Dcnv3(value, offset, mask, p);
      const at::Tensor dense = softmax
                                   ? Dcnv3Softmax(value, offset.contiguous(), mask.contiguous(), p)
                                   : Dcnv3(value, offset.contiguous(), mask.contiguous(), p);
      EXPECT_TRUE(at::equal(viewed, dense)) << c10::toString(dtype) << " softmax=" << softmax;
    }
  }
}

TEST_F(Dcnv3CudaTest, RejectsUnsupportedDtypeAndMixedDevices) {
  const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 1, 4);
  const auto f64 = at::TensorOptions().dtype(at::kDouble).device(at::kCUDA);
  try {
    Dcnv3(at::zeros({1, 3, 3, 4}, f64), at::zeros({1, 3, 3, 18}, f64), at::zeros({1, 3, 3, 9}, f64),
          p);
    ADD_FAILURE() << "double accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the CUDA kernel needs float32, float16 or bfloat16"),
              std::string::npos)
        << e.what();
  }
  try {
    Dcnv3(at::zeros({1, 3, 3, 4}).cuda(), at::zeros({1, 3, 3, 18}), at::zeros({1, 3, 3, 9}).cuda(),
          p);
    ADD_FAILURE() << "mixed devices accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("offset must be on the device of value"),
              std::string::npos)
        << e.what();
  }
}

// More than 2^31 elements in value, offset, mask and output (int64 indexing): the last images
// must equal the CPU result for them alone. Needs ~17 GB of GPU memory.
TEST_F(Dcnv3CudaTest, IndexesTensorsBeyond2To31Elements) {
  const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 64, 16);
  const int64_t n = 131100, side = 4, gk = 64 * 9;  // value: n*16*1024 > 2^31 elements
  const auto opts = at::TensorOptions().dtype(at::kHalf).device(at::kCUDA);
  at::Tensor value, offset, logits;
  try {
    at::manual_seed(5);
    value = at::randn({n, side, side, 1024}, opts);
    offset = at::rand({n, side, side, gk * 2}, opts).mul_(4).sub_(2);
    logits = at::randn({n, side, side, gk}, opts);
  } catch (const c10::Error& e) {
    GTEST_SKIP() << "needs about 17 GB of GPU memory: " << e.what();
  }
  ASSERT_GT(value.numel(), int64_t{1} << 31);
  const at::Tensor out = Dcnv3Softmax(value, offset, logits, p);
  const int64_t last = 3;
  const at::Tensor got = out.narrow(0, n - last, last).cpu().to(at::kFloat);
  const at::Tensor expected =
      Dcnv3Softmax(value.narrow(0, n - last, last).cpu().to(at::kFloat),
                   offset.narrow(0, n - last, last).cpu().to(at::kFloat),
                   logits.narrow(0, n - last, last).cpu().to(at::kFloat), p);
  EXPECT_LE(ScaledError(got, expected), 2e-3);
}

}  // namespace
}  // namespace iis::ops
