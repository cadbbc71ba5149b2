// Tests of iis::dcnv3 / iis::dcnv3_softmax on the CPU (every compiled ISA) and of Dcnv3Composed,
// against the double-precision reference in ops/testing/dcnv3_reference.cc and against
// closed-form expectations that do not depend on it.
#include "ops/dcnv3.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "ops/cpu/dcnv3_kernel.h"
#include "ops/cpu/isa.h"
#include "ops/dcnv3_op.h"
#include "ops/testing/dcnv3_reference.h"

namespace iis::ops {
namespace {

using testing_support::Dcnv3Reference;
using testing_support::WithLogits;

// Every ISA variant this binary can run here, widest first.
std::vector<cpu::Isa> IsasToTest() {
  std::vector<cpu::Isa> isas;
  const cpu::Isa best = cpu::BestIsa();
  for (cpu::Isa isa : {cpu::Isa::kAvx512, cpu::Isa::kAvx2, cpu::Isa::kBaseline}) {
    if (static_cast<int>(isa) <= static_cast<int>(best)) isas.push_back(isa);
  }
  return isas;
}

int64_t OutSize(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  return (in + 2 * pad - (dilation * (kernel - 1) + 1)) / stride + 1;
}

struct Inputs {
  at::Tensor value;   // (N, H, W, G*D) float32
  at::Tensor offset;  // (N, H_out, W_out, G*K*2) float32
  at::Tensor mask;    // (N, H_out, W_out, G*K): weights in [0, 1), or logits
};

// Fresh random inputs: value ~ N(0, 1), offsets ~ U(-offset_range, offset_range), mask weights
// ~ U(0, 1) or logits ~ 2*N(0, 1).
Inputs MakeInputs(uint64_t seed, int64_t n, int64_t h, int64_t w, const Dcnv3Params& p,
                  double offset_range, bool logits) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const int64_t h_out = OutSize(h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h);
  const int64_t w_out = OutSize(w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w);
  const int64_t gk = p.group * p.Points();
  Inputs in;
  in.value = at::randn({n, h, w, p.group * p.group_channels}, gen, f32);
  in.offset = (at::rand({n, h_out, w_out, gk * 2}, gen, f32) * 2 - 1) * offset_range;
  in.mask = logits ? at::randn({n, h_out, w_out, gk}, gen, f32) * 2
                   : at::rand({n, h_out, w_out, gk}, gen, f32);
  return in;
}

// Expects |actual - expected| <= rtol * (bound + mean(bound)) elementwise, where `bound`
// (>= |expected|) is the same computation on absolute values: the scale a correctly rounded fp32
// sum errs by. The mean term covers the fp32 rounding of the sampling coordinates, whose effect
// follows the value differences between corners rather than the output's magnitude.
void ExpectWithinBound(const at::Tensor& actual, const at::Tensor& expected,
                       const at::Tensor& bound, double rtol, const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const at::Tensor a = actual.to(at::kDouble);
  const at::Tensor err = (a - expected).abs();
  const at::Tensor allowed = (bound + bound.mean()) * rtol;
  const at::Tensor bad = err.gt(allowed).logical_or(a.isnan());
  const int64_t bad_count = bad.sum().item<int64_t>();
  if (bad_count > 0) {
    const int64_t worst = (err - allowed).flatten().nan_to_num(1e30).argmax().item<int64_t>();
    ADD_FAILURE() << what << ": " << bad_count << " of " << a.numel()
                  << " elements out of tolerance; worst at flat index " << worst << ": got "
                  << a.flatten()[worst].item<double>() << ", expected "
                  << expected.flatten()[worst].item<double>() << " (allowed error "
                  << allowed.flatten()[worst].item<double>() << ")";
  }
}

// The reference on |value| (and |mask| unless logits): bounds the magnitude of every term.
at::Tensor AbsBound(const Inputs& in, const Dcnv3Params& p, bool logits) {
  return Dcnv3Reference(in.value.abs(), in.offset, logits ? in.mask : in.mask.abs(),
                        WithLogits(p, logits));
}

// ---------------------------------------------------------------------------------------------
// Kernel against the reference over the parameter space, every ISA, plain and fused softmax.

using Case = testing_support::Dcnv3TestCase;
using testing_support::Geometry;

std::vector<Case> Cases() {
  return {
      {"InternImageLayer", 2, 8, 8, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 16), 2.0},
      {"WideRowsTwoThreads", 1, 13, 23, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 16), 2.0},
      {"Kernel1x1Pad0", 1, 5, 6, Geometry(1, 1, 1, 1, 0, 0, 1, 1, 2, 8), 1.5},
      {"Kernel5x5Pad2", 1, 7, 6, Geometry(5, 5, 1, 1, 2, 2, 1, 1, 3, 16), 2.0},
      {"Kernel3x5", 2, 6, 9, Geometry(3, 5, 1, 1, 1, 2, 1, 1, 2, 12), 2.0},
      {"Kernel2x4Even", 1, 6, 7, Geometry(2, 4, 1, 1, 0, 1, 1, 1, 2, 4), 1.5},
      {"Stride2", 1, 9, 8, Geometry(3, 3, 2, 2, 1, 1, 1, 1, 4, 8), 2.0},
      {"StrideMixedPad0", 1, 7, 10, Geometry(3, 3, 2, 1, 0, 1, 1, 1, 2, 16), 2.0},
      {"Dilation2Pad2", 1, 9, 9, Geometry(3, 3, 1, 1, 2, 2, 2, 2, 2, 32), 2.0},
      {"DilationMixedPad0", 1, 8, 11, Geometry(3, 3, 1, 1, 0, 0, 2, 1, 1, 16), 2.0},
      {"Groups7Channels3", 1, 5, 6, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 7, 3), 2.0},
      {"Group1Channels12", 1, 6, 5, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 1, 12), 2.0},
      {"Channels1", 1, 5, 5, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 1), 2.0},
      {"Channels13", 1, 5, 4, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 2, 13), 2.0},
      {"Channels36", 1, 4, 5, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 2, 36), 2.0},
      {"OffsetScaleHalf", 1, 7, 8, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 16, 0.5), 3.0},
      {"OffsetScaleTwo", 1, 8, 7, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 16, 2.0), 2.0},
      {"RemoveCenter3x3", 2, 6, 7, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 16, 1.0, true), 2.0},
      {"RemoveCenter5x5Scale2", 1, 7, 7, Geometry(5, 5, 1, 1, 2, 2, 1, 1, 2, 8, 2.0, true), 2.0},
      {"RemoveCenter3x5Stride2", 1, 9, 8, Geometry(3, 5, 2, 2, 1, 2, 1, 1, 3, 5, 1.0, true), 2.0},
      {"FarOffsetsLeaveEverySide", 2, 6, 5, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 16), 9.0},
      {"Batch300", 300, 3, 4, Geometry(3, 3, 1, 1, 1, 1, 1, 1, 2, 4), 2.0},
  };
}

class Dcnv3CaseTest : public ::testing::TestWithParam<Case> {};

TEST_P(Dcnv3CaseTest, MatchesReferenceOnEveryIsa) {
  const Case& c = GetParam();
  for (bool softmax : {false, true}) {
    const Inputs in = MakeInputs(1234 + softmax, c.n, c.h, c.w, c.params, c.offset_range, softmax);
    const Dcnv3Params p = WithLogits(c.params, softmax);
    const at::Tensor expected = Dcnv3Reference(in.value, in.offset, in.mask, p);
    const at::Tensor bound = AbsBound(in, c.params, softmax);
    for (cpu::Isa isa : IsasToTest()) {
      cpu::ScopedIsaOverride cap(isa);
      const at::Tensor out = Dcnv3(in.value, in.offset, in.mask, p);
      EXPECT_TRUE(out.is_contiguous());
      ExpectWithinBound(out, expected, bound, 1e-5,
                        c.name + (softmax ? " softmax " : " plain ") + cpu::IsaName(isa));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Geometries, Dcnv3CaseTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------------------------
// Closed-form expectations (independent of the reference).

// Zero offsets and a one-hot mask at point k read value at (ho - 1 + j, wo - 1 + i) with
// k = i*kernel_h + j (x-outer); with remove_center the points after the centre shift by one.
TEST(Dcnv3Test, PointOrderIsXOuterAndRemoveCenterSkipsTheCentre) {
  const int64_t h = 5, w = 6;
  for (bool remove_center : {false, true}) {
    const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 1, 2, 1.0, remove_center);
    const int64_t points = p.Points();
    const at::Tensor value = at::arange(h * w * 2, at::kFloat).view({1, h, w, 2});
    const at::Tensor offset = at::zeros({1, h, w, points * 2});
    for (int64_t k = 0; k < points; ++k) {
      const int64_t full_k = (remove_center && k >= 4) ? k + 1 : k;
      const int64_t i = full_k / 3, j = full_k % 3;
      const at::Tensor mask = at::zeros({1, h, w, points});
      mask.select(3, k).fill_(1.0f);
      for (cpu::Isa isa : IsasToTest()) {
        cpu::ScopedIsaOverride cap(isa);
        const at::Tensor out = Dcnv3(value, offset, mask, p);
        for (int64_t ho = 0; ho < h; ++ho) {
          for (int64_t wo = 0; wo < w; ++wo) {
            const int64_t y = ho - 1 + j, x = wo - 1 + i;
            const bool inside = y >= 0 && y < h && x >= 0 && x < w;
            for (int64_t d = 0; d < 2; ++d) {
              const float expected = inside ? static_cast<float>((y * w + x) * 2 + d) : 0.0f;
              ASSERT_EQ(out[0][ho][wo][d].item<float>(), expected)
                  << "k=" << k << " remove_center=" << remove_center << " at (" << ho << ", " << wo
                  << ") " << cpu::IsaName(isa);
            }
          }
        }
      }
    }
  }
}

// Integer offsets put samples exactly on pixel centres and exactly on -1 and H / W (which must
// read nothing, and nothing outside the image). With value 1 and mask 1 every output counts the
// points that land on a pixel; half-integer positions at the border count 1/2.
TEST(Dcnv3Test, IntegerAndBorderPositionsCountExactly) {
  const int64_t n = 2, h = 4, w = 5, group = 3;
  const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, group, 16);
  const int64_t points = p.Points();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(77);
  // Offsets in {-7, ..., 7} (+ 0.5 for a quarter of the points): every side, every border value.
  at::Tensor offset = at::randint(-7, 8, {n, h, w, group * points * 2}, gen, at::kFloat);
  const at::Tensor half = at::rand({n, h, w, group * points * 2}, gen, at::kFloat).lt(0.25);
  offset = offset + half.to(at::kFloat) * 0.5;
  const at::Tensor value = at::ones({n, h, w, group * 16});
  const at::Tensor mask = at::ones({n, h, w, group * points});
  // Expected: sum over points of the 1-D "coverage" of x times that of y, where an integer
  // coordinate counts 1 inside [0, size-1], a half-integer counts 1/2 for each neighbour inside.
  auto coverage = [](double c, int64_t size) {
    if (c == std::floor(c)) return (c >= 0 && c <= size - 1) ? 1.0 : 0.0;
    const double lo = std::floor(c);
    return 0.5 * ((lo >= 0 && lo <= size - 1) ? 1 : 0) +
           0.5 * ((lo + 1 >= 0 && lo + 1 <= size - 1) ? 1 : 0);
  };
  at::Tensor expected = at::zeros({n, h, w, group}, at::kDouble);
  int borders_hit = 0;
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t ho = 0; ho < h; ++ho) {
      for (int64_t wo = 0; wo < w; ++wo) {
        for (int64_t g = 0; g < group; ++g) {
          double total = 0;
          for (int64_t k = 0; k < points; ++k) {
            const int64_t i = k / 3, j = k % 3;
            const double x = wo - 1 + i + offset[b][ho][wo][(g * points + k) * 2].item<double>();
            const double y =
                ho - 1 + j + offset[b][ho][wo][(g * points + k) * 2 + 1].item<double>();
            if (x == -1 || x == w || y == -1 || y == h) ++borders_hit;
            total += coverage(x, w) * coverage(y, h);
          }
          expected[b][ho][wo][g] = total;
        }
      }
    }
  }
  ASSERT_GT(borders_hit, 20) << "the random offsets should hit the borders -1 and H/W";
  const at::Tensor expected_channels =
      expected.unsqueeze(-1).expand({n, h, w, group, 16}).reshape({n, h, w, group * 16});
  for (cpu::Isa isa : IsasToTest()) {
    cpu::ScopedIsaOverride cap(isa);
    const at::Tensor out = Dcnv3(value, offset, mask, p);
    EXPECT_TRUE(at::equal(out.to(at::kDouble), expected_channels)) << cpu::IsaName(isa);
  }
}

// Bilinear interpolation reproduces a linear function exactly, so with value(y, x, c) =
// a_c*x + b_c*y + e_c and every sample inside the image, out = sum_k m_k * (a px + b py + e) with
// px, py from the documented formula (including stride, dilation, offset_scale, dx before dy).
TEST(Dcnv3Test, LinearRampIsInterpolatedExactly) {
  const int64_t h = 12, w = 14, group = 2, depth = 16;
  const Dcnv3Params p = Geometry(3, 3, 2, 1, 0, 0, 2, 1, group, depth, 0.5);
  const int64_t points = p.Points();
  const int64_t h_out = OutSize(h, 3, 2, 0, 2), w_out = OutSize(w, 3, 1, 0, 1);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor a = at::rand({group * depth}, gen, at::kDouble);
  const at::Tensor b = at::rand({group * depth}, gen, at::kDouble) - 0.5;
  const at::Tensor e = at::rand({group * depth}, gen, at::kDouble);
  const at::Tensor ys = at::arange(h, at::kDouble).view({h, 1, 1});
  const at::Tensor xs = at::arange(w, at::kDouble).view({1, w, 1});
  const at::Tensor value = (a * xs + b * ys + e).unsqueeze(0).to(at::kFloat);
  // Offsets in (-0.9, 0.9), scaled by 0.5, keep every sample at least 0.05 inside the image.
  const at::Tensor offset =
      (at::rand({1, h_out, w_out, group * points * 2}, gen, at::kFloat) * 2 - 1) * 0.9f;
  const at::Tensor mask = at::rand({1, h_out, w_out, group * points}, gen, at::kFloat);
  at::Tensor expected = at::zeros({1, h_out, w_out, group * depth}, at::kDouble);
  for (int64_t ho = 0; ho < h_out; ++ho) {
    for (int64_t wo = 0; wo < w_out; ++wo) {
      for (int64_t g = 0; g < group; ++g) {
        for (int64_t k = 0; k < points; ++k) {
          const int64_t i = k / 3, j = k % 3;
          const double dx = offset[0][ho][wo][(g * points + k) * 2].item<double>();
          const double dy = offset[0][ho][wo][(g * points + k) * 2 + 1].item<double>();
          const double px = wo * 1 - 0 + 1 + (i * 1 - 1 + dx) * 0.5;  // half_w = 1
          const double py = ho * 2 - 0 + 2 + (j * 2 - 2 + dy) * 0.5;  // half_h = 2
          ASSERT_TRUE(px > 0 && px < w - 1 && py > 0 && py < h - 1);
          const double m = mask[0][ho][wo][g * points + k].item<double>();
          const at::Tensor chans = at::arange(g * depth, (g + 1) * depth);
          expected[0][ho][wo].index_put_(
              {chans}, expected[0][ho][wo].index({chans}) +
                           m * (a.index({chans}) * px + b.index({chans}) * py + e.index({chans})));
        }
      }
    }
  }
  for (cpu::Isa isa : IsasToTest()) {
    cpu::ScopedIsaOverride cap(isa);
    const at::Tensor out = Dcnv3(value, offset, mask, p).to(at::kDouble);
    EXPECT_TRUE(at::allclose(out, expected, 1e-5, 1e-5))
        << cpu::IsaName(isa) << " max error " << (out - expected).abs().max().item<double>();
  }
}

// Reading outside an image (another image of the batch, or beyond the tensor) would pick up NaN
// from the guard images around the batch; the reference reads nothing there.
TEST(Dcnv3Test, NeverReadsOutsideItsImage) {
  const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 2, 16);
  const Inputs in = MakeInputs(99, 3, 4, 5, p, 6.0, false);
  at::Tensor guarded = at::full({5, 4, 5, 32}, std::numeric_limits<float>::quiet_NaN());
  guarded.narrow(0, 1, 3).copy_(in.value);
  const at::Tensor value = guarded.narrow(0, 1, 3);
  ASSERT_TRUE(value.is_contiguous());
  const at::Tensor expected = Dcnv3Reference(in.value, in.offset, in.mask, p);
  const at::Tensor bound = AbsBound(in, p, false);
  for (cpu::Isa isa : IsasToTest()) {
    cpu::ScopedIsaOverride cap(isa);
    ExpectWithinBound(Dcnv3(value, in.offset, in.mask, p), expected, bound, 1e-5,
                      cpu::IsaName(isa));
  }
}

// Non-finite values reach exactly the outputs whose samples read them with a weight (as in the
// reference and the official kernel): corners outside the image and points outside it read
// nothing, even when the image border holds NaN and infinities.
TEST(Dcnv3Test, NonFiniteValuesReachOnlyTheSamplesThatReadThem) {
  const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 2, 8);
  Inputs in = MakeInputs(31, 2, 12, 14, p, 1.5, false);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  // The four image corners and an inner pixel of every image.
  in.value.select(1, 0).select(1, 0).fill_(nan);
  in.value.select(1, 0).select(1, 13).fill_(-inf);
  in.value.select(1, 11).select(1, 0).fill_(inf);
  in.value.select(1, 11).select(1, 13).fill_(nan);
  in.value.select(1, 6).select(1, 7).fill_(inf);
  const at::Tensor expected = Dcnv3Reference(in.value, in.offset, in.mask, p);
  const at::Tensor finite = at::isfinite(expected);
  ASSERT_GT(finite.logical_not().sum().item<int64_t>(), 0);
  ASSERT_GT(finite.sum().item<int64_t>(), expected.numel() / 4);
  const at::Tensor bound = Dcnv3Reference(in.value.abs(), in.offset, in.mask.abs(), p);
  for (cpu::Isa isa : IsasToTest()) {
    cpu::ScopedIsaOverride cap(isa);
    const at::Tensor out = Dcnv3(in.value, in.offset, in.mask, p).to(at::kDouble);
    EXPECT_TRUE(at::equal(at::isfinite(out), finite)) << cpu::IsaName(isa);
    ExpectWithinBound(out.masked_select(finite), expected.masked_select(finite),
                      bound.masked_select(finite), 1e-5, cpu::IsaName(isa));
  }
}

// A point outside the image contributes nothing even when its mask weight is NaN or infinite
// (the official kernel skips it), and exactly -1 / H are outside.
TEST(Dcnv3Test, OutsidePointsIgnoreTheirMask) {
  const Dcnv3Params p = Geometry(1, 1, 1, 1, 0, 0, 1, 1, 1, 4);
  const at::Tensor value = at::ones({1, 2, 2, 4});
  for (float weight :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    // Pixel (0, 0) samples x = 0 + dx = -1 exactly: outside. The others sample their own pixel.
    at::Tensor offset = at::zeros({1, 2, 2, 2});
    offset[0][0][0][0] = -1.0f;
    offset[0][0][0][1] = 0.5f;
    at::Tensor mask = at::full({1, 2, 2, 1}, 3.0f);
    mask[0][0][0][0] = weight;
    for (cpu::Isa isa : IsasToTest()) {
      cpu::ScopedIsaOverride cap(isa);
      const at::Tensor out = Dcnv3(value, offset, mask, p);
      EXPECT_TRUE(at::equal(out[0][0][0], at::zeros({4}))) << cpu::IsaName(isa) << out[0][0][0];
      EXPECT_TRUE(at::equal(out[0][1][1], at::full({4}, 3.0f))) << cpu::IsaName(isa);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Entry points, layouts and threads.

TEST(Dcnv3Test, FusedSoftmaxEqualsSoftmaxThenPlainOp) {
  const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 16, 1.0, true);
  const Inputs in = MakeInputs(21, 2, 7, 9, p, 2.0, /*logits=*/true);
  // Logits with a wide range exercise the max subtraction (exp(80) alone would overflow fp32).
  const at::Tensor logits = in.mask * 20;
  const at::Tensor weights =
      at::softmax(logits.view({2, 7, 9, 4, p.Points()}), -1).view(logits.sizes());
  for (cpu::Isa isa : IsasToTest()) {
    cpu::ScopedIsaOverride cap(isa);
    const at::Tensor fused = Dcnv3Softmax(in.value, in.offset, logits, p);
    const at::Tensor plain = Dcnv3(in.value, in.offset, weights, p);
    EXPECT_TRUE(at::allclose(fused, plain, 1e-5, 1e-6))
        << cpu::IsaName(isa) << " max error " << (fused - plain).abs().max().item<float>();
  }
}

// The schemas are the ops' public contract (models and Python callers name their arguments): one
// argument list for both, the third argument named after what it holds.
TEST(Dcnv3Test, SchemasAreTheContract) {
  auto schema = [](const char* name) {
    std::ostringstream out;
    out << c10::Dispatcher::singleton().findSchemaOrThrow(name, "").schema();
    return out.str();
  };
  EXPECT_EQ(schema("iis::dcnv3"),
            "iis::dcnv3(Tensor value, Tensor offset, Tensor mask, int kernel_h, int kernel_w, "
            "int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, "
            "int group, int group_channels, float offset_scale, bool remove_center) -> Tensor");
  EXPECT_EQ(schema("iis::dcnv3_softmax"),
            "iis::dcnv3_softmax(Tensor value, Tensor offset, Tensor mask_logits, int kernel_h, "
            "int kernel_w, int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, "
            "int dilation_w, int group, int group_channels, float offset_scale, "
            "bool remove_center) -> Tensor");
}

// Dcnv3Params -> schema arguments -> Dcnv3Params keeps every field in its place.
TEST(Dcnv3Test, SchemaArgumentsRoundTrip) {
  const Dcnv3Params p = Geometry(2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0.25, true);
  for (bool logits : {false, true}) {
    const Dcnv3Params q =
        std::apply([&](auto... scalars) { return Dcnv3ParamsFromSchema(logits, scalars...); },
                   Dcnv3SchemaArguments(p));
    EXPECT_EQ(std::make_tuple(q.kernel_h, q.kernel_w, q.stride_h, q.stride_w, q.pad_h, q.pad_w,
                              q.dilation_h, q.dilation_w, q.group, q.group_channels),
              std::make_tuple(2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
    EXPECT_EQ(q.offset_scale, 0.25);
    EXPECT_TRUE(q.remove_center);
    EXPECT_EQ(q.mask_is_logits, logits);
    EXPECT_STREQ(Dcnv3OpName(q), logits ? "iis::dcnv3_softmax" : "iis::dcnv3");
  }
}

// Dcnv3 runs iis::dcnv3_softmax when the parameters say the mask holds logits, as Dcnv3Softmax
// does whatever they say.
TEST(Dcnv3Test, MaskIsLogitsSelectsTheSoftmaxOp) {
  const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 2, 8);
  const Inputs in = MakeInputs(17, 1, 6, 5, p, 2.0, /*logits=*/true);
  const at::Tensor fused = Dcnv3Softmax(in.value, in.offset, in.mask, p);
  EXPECT_TRUE(at::equal(Dcnv3(in.value, in.offset, in.mask, WithLogits(p, true)), fused));
  EXPECT_TRUE(at::equal(Dcnv3Softmax(in.value, in.offset, in.mask, WithLogits(p, true)), fused));
  EXPECT_FALSE(at::equal(Dcnv3(in.value, in.offset, in.mask, p), fused));
}

// The model passes offset and mask as column slices of one fused projection output.
TEST(Dcnv3Test, AcceptsColumnViewsOfOneFusedTensor) {
  for (int64_t n : {1, 3}) {
    for (int64_t h : {1, 5}) {
      const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 8);
      const int64_t gk = 4 * p.Points();
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
      const at::Tensor value = at::randn({n, h, 6, 32}, gen, at::kFloat);
      const at::Tensor fused = at::randn({n, h, 6, gk * 3}, gen, at::kFloat);
      for (bool offset_first : {true, false}) {
        const at::Tensor offset = fused.narrow(3, offset_first ? 0 : gk, gk * 2);
        const at::Tensor mask = fused.narrow(3, offset_first ? gk * 2 : 0, gk);
        for (bool softmax : {false, true}) {
          const Dcnv3Params q = WithLogits(p, softmax);
          const at::Tensor dense = Dcnv3(value, offset.contiguous(), mask.contiguous(), q);
          for (cpu::Isa isa : IsasToTest()) {
            cpu::ScopedIsaOverride cap(isa);
            const at::Tensor viewed = Dcnv3(value, offset, mask, q);
            const at::Tensor dense_here = Dcnv3(value, offset.contiguous(), mask.contiguous(), q);
            EXPECT_TRUE(at::equal(viewed, dense_here))
                << "n=" << n << " h=" << h << " offset_first=" << offset_first
                << " softmax=" << softmax << " " << cpu::IsaName(isa);
          }
          EXPECT_TRUE(at::isfinite(dense).all().item<bool>());
        }
      }
    }
  }
}

TEST(Dcnv3Test, ResultDoesNotDependOnTheThreadCount) {
  const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 4, 16);
  const Inputs in = MakeInputs(8, 2, 11, 13, p, 2.0, true);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = Dcnv3Softmax(in.value, in.offset, in.mask, p);
  at::set_num_threads(std::max(2, threads));
  const at::Tensor many = Dcnv3Softmax(in.value, in.offset, in.mask, p);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one, many));
}

// ---------------------------------------------------------------------------------------------
// The composed ATen version (benchmark baseline) against the reference.

TEST(Dcnv3Test, ComposedMatchesReference) {
  for (const Case& c : Cases()) {
    if (c.n * c.h * c.w > 200) continue;  // The batch-300 case adds nothing here.
    for (bool logits : {false, true}) {
      const Inputs in = MakeInputs(4321, c.n, c.h, c.w, c.params, c.offset_range, logits);
      const Dcnv3Params p = WithLogits(c.params, logits);
      const at::Tensor expected = Dcnv3Reference(in.value, in.offset, in.mask, p);
      ExpectWithinBound(Dcnv3Composed(in.value, in.offset, in.mask, p), expected,
                        AbsBound(in, c.params, logits), 2e-5,
                        "composed " + c.name + (logits ? " logits" : " mask"));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The SIMD exp of the fused softmax.

TEST(Dcnv3Test, VectorExpIsWithinTwoUlpOnEveryIsa) {
  std::vector<float> x;
  for (float v = -87.0f; v <= 88.0f; v += 0.000731f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1.0f, -1.0f, 0.34657359f, -0.34657359f})
    x.push_back(v);
  std::vector<float> y(x.size());
  for (cpu::Isa isa : IsasToTest()) {
    cpu::ScopedIsaOverride cap(isa);
    // Odd lengths exercise the partial last vector.
    cpu::Dcnv3Exp(x.data(), y.data(), static_cast<int64_t>(x.size()));
    double worst_ulp = 0;
    float worst_x = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double exact = std::exp(static_cast<double>(x[i]));
      const float rounded = static_cast<float>(exact);
      const double ulp = std::nextafter(rounded, std::numeric_limits<float>::infinity()) - rounded;
      const double err = std::fabs(y[i] - exact) / ulp;
      if (err > worst_ulp) {
        worst_ulp = err;
        worst_x = x[i];
      }
    }
    EXPECT_LE(worst_ulp, 2.0) << cpu::IsaName(isa) << " at x = " << worst_x;
    float special_in[3] = {std::numeric_limits<float>::quiet_NaN(), -1000.0f, 1000.0f};
    float special_out[3];
    cpu::Dcnv3Exp(special_in, special_out, 3);
    EXPECT_TRUE(std::isnan(special_out[0])) << cpu::IsaName(isa);
    EXPECT_GT(special_out[1], 0.0f);  // Clamped to exp(-87).
    EXPECT_LT(special_out[1], 2e-38f);
    EXPECT_TRUE(std::isfinite(special_out[2]));  // Clamped to exp(88).
  }
}

// ---------------------------------------------------------------------------------------------
// Errors name the argument, the expectation and what came.

struct BadCall {
  std::string name;
  std::function<void()> call;
  std::string fragment;
};

TEST(Dcnv3Test, RejectsBadArgumentsWithClearMessages) {
  const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 2, 4);
  const Inputs in = MakeInputs(1, 1, 5, 6, p, 1.0, false);
  const at::Tensor& v = in.value;
  const at::Tensor& o = in.offset;
  const at::Tensor& m = in.mask;
  auto with = [&](auto change) {
    Dcnv3Params q = p;
    change(q);
    return q;
  };
  const std::vector<BadCall> calls = {
      {"undefined value", [&] { Dcnv3(at::Tensor(), o, m, p); }, "value is an undefined tensor"},
      {"3-D value", [&] { Dcnv3(v[0], o, m, p); },
       "value must be 4-D (N, H_in, W_in, group*group_channels), got 3-D"},
      {"5-D offset", [&] { Dcnv3(v, o.unsqueeze(0), m, p); }, "offset must be 4-D"},
      {"2-D mask", [&] { Dcnv3(v, o, m[0][0], p); }, "mask must be 4-D"},
      {"channels", [&] { Dcnv3(v, o, m, with([](auto& q) { q.group_channels = 3; })); },
       "value channels (dim 3) must equal group*group_channels = 2*3 = 6, got 8"},
      {"offset K", [&] { Dcnv3(v, o, m, with([](auto& q) { q.remove_center = true; })); },
       "offset must have shape [N, H_out, W_out, group*K*2] = [1, 5, 6, 32], got [1, 5, 6, 36]"},
      {"offset H_out", [&] { Dcnv3(v, o.narrow(1, 0, 4), m, p); }, "offset must have shape"},
      {"mask channels", [&] { Dcnv3(v, o, m.narrow(3, 0, 17), p); },
       "mask must have shape [N, H_out, W_out, group*K] = [1, 5, 6, 18], got [1, 5, 6, 17]"},
      {"mask batch",
       [&] {
         Dcnv3(v, o, at::cat({m, m}), p);
       },
       "mask must have shape"},
      {"double", [&] { Dcnv3(v.to(at::kDouble), o.to(at::kDouble), m.to(at::kDouble), p); },
       "the CPU kernel needs float32 value/offset/mask, got Double"},
      {"dtype mismatch", [&] { Dcnv3(v, o.to(at::kDouble), m, p); },
       "offset must have the dtype of value (Float), got Double"},
      {"mask dtype", [&] { Dcnv3(v, o, m.to(at::kHalf), p); }, "mask must have the dtype of value"},
      {"device mismatch", [&] { CheckDcnv3Args("op", v, o.to(at::kMeta), m, p); },
       "offset must be on the device of value (cpu), got meta"},
      {"stride 0", [&] { Dcnv3(v, o, m, with([](auto& q) { q.stride_h = 0; })); },
       "stride_h must be in [1, "},
      {"kernel 0", [&] { Dcnv3(v, o, m, with([](auto& q) { q.kernel_w = 0; })); },
       "kernel_w must be in [1, "},
      {"dilation 0", [&] { Dcnv3(v, o, m, with([](auto& q) { q.dilation_w = 0; })); },
       "dilation_w must be in [1, "},
      {"negative pad", [&] { Dcnv3(v, o, m, with([](auto& q) { q.pad_h = -1; })); },
       "pad_h must be in [0, "},
      {"group 0", [&] { Dcnv3(v, o, m, with([](auto& q) { q.group = 0; })); },
       "group must be in [1, "},
      {"unset group_channels", [&] { Dcnv3(v, o, m, with([](auto& q) { q.group_channels = 0; })); },
       "group_channels must be in [1, "},
      {"nan scale", [&] { Dcnv3(v, o, m, with([](auto& q) { q.offset_scale = NAN; })); },
       "offset_scale must be finite, got nan"},
      {"remove_center 1x1",
       [&] {
         Dcnv3(v, o, m, with([](auto& q) {
                 q.kernel_h = q.kernel_w = 1;
                 q.remove_center = true;
               }));
       },
       "remove_center needs a kernel with more than one point, got 1x1"},
      {"empty output",
       [&] {
         Dcnv3(v, o, m, with([](auto& q) {
                 q.kernel_h = 9;
                 q.pad_h = 1;
               }));
       },
       "empty output: the kernel height extent dilation*(kernel-1)+1 = 9 exceeds the padded input "
       "height input+2*pad = 7"},
      {"empty batch", [&] { Dcnv3(v.narrow(0, 0, 0), o.narrow(0, 0, 0), m.narrow(0, 0, 0), p); },
       "value must be non-empty, got sizes [0, 5, 6, 8]"},
      {"strided value",
       [&] {
         Dcnv3(at::randn({1, 6, 5, 8}).transpose(1, 2), o, m, p);
       },
       "value must be dense (contiguous N, H, W, C)"},
      {"transposed offset", [&] { Dcnv3(v, o.transpose(1, 2).contiguous().transpose(1, 2), m, p); },
       "offset must be dense (N, H, W, C) or a last-dimension slice of a dense tensor"},
      {"strided last dim",
       [&] {
         Dcnv3(v, o, at::randn({1, 5, 6, 36}).slice(3, 0, 36, 2), p);
       },
       "mask must be dense (N, H, W, C) or a last-dimension slice"},
  };
  for (const BadCall& bad : calls) {
    try {
      bad.call();
      ADD_FAILURE() << bad.name << ": no error";
    } catch (const c10::Error& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(bad.fragment)) << bad.name;
    }
  }
}

TEST(Dcnv3Test, SoftmaxEntryChecksArgumentsAsWell) {
  const Dcnv3Params p = Geometry(3, 3, 1, 1, 1, 1, 1, 1, 2, 4);
  const Inputs in = MakeInputs(1, 1, 5, 6, p, 1.0, true);
  try {
    Dcnv3Softmax(in.value, in.offset, in.mask.narrow(3, 0, 10), p);
    ADD_FAILURE() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("iis::dcnv3_softmax: mask must have shape"));
  }
}

}  // namespace
}  // namespace iis::ops
