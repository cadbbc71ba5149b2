#include "ops/roi_align.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ops/testing/roi_align_reference.h"
#include "ops/testing/torchvision_oracle.h"

namespace iis::ops {
namespace {

using ::testing::HasSubstr;

at::Tensor RandomInput(std::mt19937* rng, int64_t n, int64_t c, int64_t h, int64_t w) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  at::Tensor t = at::empty({n, c, h, w}, at::kFloat);
  float* data = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) data[i] = normal(*rng);
  return t;
}

// The kinds of RoI edges the tests cover along one axis of a map of `size` pixels at `stride`
// image pixels per map pixel.
enum class Span {
  kInside,         // well inside the map
  kPartlyOutside,  // one edge beyond the map
  kOutside,        // wholly beyond the map (either side)
  kTinyMap,        // narrower than one map pixel
  kTinyImage,      // narrower than one image pixel
  kHuge,           // many times the map
  kInverted,       // c2 < c1
};
constexpr Span kAllSpans[] = {Span::kInside,  Span::kPartlyOutside, Span::kOutside,
                              Span::kTinyMap, Span::kTinyImage,     Span::kHuge,
                              Span::kInverted};

// Returns (c1, c2) in image coordinates.
std::pair<float, float> RandomSpan(Span kind, float size, float stride, std::mt19937* rng) {
  const float extent = size * stride;
  auto uniform = [rng](float lo, float hi) {
    return std::uniform_real_distribution<float>(lo, hi)(*rng);
  };
  switch (kind) {
    case Span::kInside: {
      const float c1 = uniform(0.0f, 0.6f * extent);
      return {c1, c1 + uniform(stride, 0.4f * extent)};
    }
    case Span::kPartlyOutside: {
      if (uniform(0.0f, 1.0f) < 0.5f)
        return {uniform(-0.5f * extent, 0.0f), uniform(0.2f, 0.6f) * extent};
      return {uniform(0.4f, 0.9f) * extent, uniform(1.05f, 1.5f) * extent};
    }
    case Span::kOutside: {
      if (uniform(0.0f, 1.0f) < 0.5f) {
        const float c1 = uniform(-3.0f, -1.5f) * extent;
        return {c1, c1 + uniform(0.1f, 1.0f) * extent};
      }
      const float c1 = uniform(1.2f, 2.0f) * extent;
      return {c1, c1 + uniform(0.1f, 1.0f) * extent};
    }
    case Span::kTinyMap: {
      const float c1 = uniform(0.0f, extent);
      return {c1, c1 + uniform(0.0f, stride)};
    }
    case Span::kTinyImage: {
      const float c1 = uniform(0.0f, extent);
      return {c1, c1 + uniform(0.0f, 1.0f)};
    }
    case Span::kHuge: {
      const float c1 = uniform(-5.0f, 0.0f) * extent;
      return {c1, c1 + uniform(3.0f, 10.0f) * extent};
    }
    case Span::kInverted: {
      const float c1 = uniform(0.3f, 1.0f) * extent;
      return {c1, c1 - uniform(0.0f, 0.3f) * extent};
    }
  }
  return {0.0f, 0.0f};
}

// One RoI for every (x kind, y kind) pair, batch indices cycling over the batch.
// `with_inverted` false leaves out inverted spans.
at::Tensor RandomRois(std::mt19937* rng, int64_t batch, int64_t height, int64_t width, float stride,
                      bool with_inverted = true) {
  std::vector<float> rois;
  int64_t k = 0;
  for (Span kx : kAllSpans) {
    for (Span ky : kAllSpans) {
      if (!with_inverted && (kx == Span::kInverted || ky == Span::kInverted)) continue;
      const auto [x1, x2] = RandomSpan(kx, static_cast<float>(width), stride, rng);
      const auto [y1, y2] = RandomSpan(ky, static_cast<float>(height), stride, rng);
      rois.insert(rois.end(), {static_cast<float>(k++ % batch), x1, y1, x2, y2});
    }
  }
  return at::from_blob(rois.data(), {k, 5}, at::kFloat).clone();
}

// Expects |actual - expected| <= atol + rtol * |expected| everywhere and reports the worst entry.
void ExpectClose(const at::Tensor& actual, const at::Tensor& expected, double atol, double rtol) {
  ASSERT_EQ(actual.sizes(), expected.sizes());
  const at::Tensor a = actual.to(at::kDouble).contiguous().view(-1);
  const at::Tensor e = expected.to(at::kDouble).contiguous().view(-1);
  const double* ad = a.data_ptr<double>();
  const double* ed = e.data_ptr<double>();
  int64_t bad = 0;
  int64_t worst = -1;
  double worst_excess = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double excess = std::abs(ad[i] - ed[i]) - (atol + rtol * std::abs(ed[i]));
    if (!(excess <= 0.0)) {
      ++bad;
      if (worst < 0 || !(excess <= worst_excess)) {
        worst = i;
        worst_excess = excess;
      }
    }
  }
  EXPECT_EQ(bad, 0) << "worst flat index " << worst << ": actual " << (worst >= 0 ? ad[worst] : 0.0)
                    << ", expected " << (worst >= 0 ? ed[worst] : 0.0);
}

// Returns the message of the c10::Error that `call` throws, or "" if it throws none.
std::string ErrorOf(const std::function<void()>& call) {
  try {
    call();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

// Every mode against the reference: aligned or not, adaptive or fixed sampling, the four FPN
// strides, square and non-square outputs (one test, so one process under CTest).
TEST(RoiAlignTest, MatchesDoublePrecisionReferenceInAllModes) {
  for (const bool aligned : {true, false}) {
    for (const int64_t sampling_ratio : {0, 2}) {
      for (const int stride : {4, 8, 16, 32}) {
        for (const auto& [pooled_h, pooled_w] :
             {std::pair<int64_t, int64_t>{7, 7}, std::pair<int64_t, int64_t>{3, 5}}) {
          SCOPED_TRACE(::testing::Message()
                       << "aligned " << aligned << ", sampling_ratio " << sampling_ratio
                       << ", stride " << stride << ", pooled " << pooled_h << "x" << pooled_w);
          std::mt19937 rng(1234 + stride * 7 + sampling_ratio + (aligned ? 1 : 0));
          // Odd sizes and C = 5 exercise partial vectors and the map edges.
          const at::Tensor input = RandomInput(&rng, 3, 5, 13, 17);
          const at::Tensor rois = RandomRois(&rng, 3, 13, 17, static_cast<float>(stride));
          const double scale = 1.0 / stride;
          const at::Tensor out =
              RoiAlign(input, rois, scale, pooled_h, pooled_w, sampling_ratio, aligned);
          const at::Tensor expected = reference::RoiAlignReference(
              input, rois, scale, pooled_h, pooled_w, sampling_ratio, aligned);
          // The kernel places samples in float32 (as mmcv does), the reference in double: on
          // RoIs that reach hundreds of map pixels the positions differ by ~1e-5 pixel, hence
          // the tolerance.
          ExpectClose(out, expected, 1e-4, 1e-5);
        }
      }
    }
  }
}

// A linear map is reproduced exactly by bilinear sampling, and the samples of a bin are symmetric
// about its centre, so each output is the map's value at the bin centre. This pins the aligned
// half-pixel shift and the bin geometry independently of any implementation.
TEST(RoiAlignTest, LinearMapGivesValuesAtBinCentres) {
  const int64_t h = 20;
  const int64_t w = 30;
  const at::Tensor ys = at::arange(h, at::kFloat).view({1, 1, h, 1});
  const at::Tensor xs = at::arange(w, at::kFloat).view({1, 1, 1, w});
  const at::Tensor input = (2 * xs + 3 * ys + 1).contiguous();
  for (const bool aligned : {true, false}) {
    for (const int64_t sampling_ratio : {0, 2, 3}) {
      const float roi[5] = {0.0f, 9.0f, 6.5f, 41.0f, 22.5f};  // at spatial_scale 0.5
      const at::Tensor rois = at::from_blob(const_cast<float*>(roi), {1, 5}, at::kFloat);
      const at::Tensor out = RoiAlign(input, rois, 0.5, 4, 5, sampling_ratio, aligned);
      const double shift = aligned ? 0.5 : 0.0;
      const double x0 = 4.5 - shift;
      const double y0 = 3.25 - shift;
      const double bin_w = (20.5 - 4.5) / 5;
      const double bin_h = (11.25 - 3.25) / 4;
      for (int64_t ph = 0; ph < 4; ++ph) {
        for (int64_t pw = 0; pw < 5; ++pw) {
          const double cx = x0 + (pw + 0.5) * bin_w;
          const double cy = y0 + (ph + 0.5) * bin_h;
          EXPECT_NEAR(out[0][0][ph][pw].item<float>(), 2 * cx + 3 * cy + 1, 1e-4)
              << "aligned " << aligned << " sampling_ratio " << sampling_ratio << " bin (" << ph
              << ", " << pw << ")";
        }
      }
    }
  }
}

// Single samples (1x1 output, one sample per bin) at chosen x positions of the map v = x + 10,
// W = 4: below -1 and beyond W give 0, [-1, 0] clamps to column 0, and from W - 1 on the last
// column is used without interpolation.
TEST(RoiAlignTest, BilinearBoundaryRule) {
  const at::Tensor xs = at::arange(4, at::kFloat).view({1, 1, 1, 4});
  const at::Tensor input = (xs + 10).expand({1, 1, 3, 4}).contiguous();
  const std::vector<std::pair<float, float>> cases = {
      {-1.25f, 0.0f}, {-1.0f, 10.0f}, {-0.5f, 10.0f}, {0.0f, 10.0f}, {2.25f, 12.25f},
      {3.0f, 13.0f},  {3.5f, 13.0f},  {4.0f, 13.0f},  {4.25f, 0.0f}};
  for (const auto& [x, expected] : cases) {
    // Not aligned, scale 1, width 1, one sample: the sample sits at x1 + 0.5.
    const float roi[5] = {0.0f, x - 0.5f, 0.5f, x + 0.5f, 1.5f};
    const at::Tensor rois = at::from_blob(const_cast<float*>(roi), {1, 5}, at::kFloat);
    const at::Tensor out = RoiAlign(input, rois, 1.0, 1, 1, 1, false);
    EXPECT_FLOAT_EQ(out.item<float>(), expected) << "sample at x = " << x;
  }
}

TEST(RoiAlignTest, InvertedRoiWithAdaptiveSamplingIsZero) {
  std::mt19937 rng(7);
  const at::Tensor input = RandomInput(&rng, 1, 3, 8, 8);
  const float roi[5] = {0.0f, 6.0f, 2.0f, 2.0f, 6.0f};  // x2 < x1
  const at::Tensor rois = at::from_blob(const_cast<float*>(roi), {1, 5}, at::kFloat);
  EXPECT_EQ(RoiAlign(input, rois, 1.0, 2, 2, 0, true).abs().max().item<float>(), 0.0f);
  // With a fixed sampling ratio the samples walk backwards and are not all zero.
  EXPECT_GT(RoiAlign(input, rois, 1.0, 2, 2, 2, true).abs().max().item<float>(), 0.0f);
}

TEST(RoiAlignTest, NoRoisGivesEmptyOutput) {
  std::mt19937 rng(1);
  const at::Tensor input = RandomInput(&rng, 2, 4, 6, 6);
  const at::Tensor out = RoiAlign(input, at::empty({0, 5}, at::kFloat), 0.25, 7, 7, 0, true);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{0, 4, 7, 7}));
}

TEST(RoiAlignTest, LayoutOfTheInputDoesNotMatter) {
  std::mt19937 rng(99);
  const at::Tensor wide = RandomInput(&rng, 2, 12, 11, 9);
  const at::Tensor rois = RandomRois(&rng, 2, 11, 9, 8.0f);
  const at::Tensor strided = wide.slice(1, 0, 12, 2);  // every other channel
  const at::Tensor expected = RoiAlign(strided.contiguous(), rois, 0.125, 7, 7, 0, true);
  EXPECT_TRUE(RoiAlign(strided, rois, 0.125, 7, 7, 0, true).equal(expected));
  EXPECT_TRUE(
      RoiAlign(strided.contiguous(at::MemoryFormat::ChannelsLast), rois, 0.125, 7, 7, 0, true)
          .equal(expected));
}

TEST(RoiAlignTest, MatchesTorchvision) {
  if (!reference::TorchvisionOracle::Unavailable().empty()) {
    GTEST_SKIP() << reference::TorchvisionOracle::Unavailable();
  }
  std::mt19937 rng(2024);
  const int64_t n = 2, c = 16, h = 25, w = 38;
  const at::Tensor input = RandomInput(&rng, n, c, h, w);
  // Inverted RoIs are left out: with adaptive sampling torchvision's CPU kernel (like mmcv's)
  // sizes a vector by a negative grid and throws.
  const at::Tensor rois = RandomRois(&rng, n, h, w, 8.0f, /*with_inverted=*/false);
  reference::TorchvisionOracle oracle;
  oracle.Write("input", input);
  oracle.Write("rois", rois);
  std::ostringstream script;
  script << "import numpy as np, torch, torchvision\n"
         << "x = torch.from_numpy(np.fromfile('input.bin', np.float32).reshape(" << n << ", " << c
         << ", " << h << ", " << w << "))\n"
         << "r = torch.from_numpy(np.fromfile('rois.bin', np.float32).reshape(-1, 5))\n"
         << "for i, (sr, al) in enumerate([(0, True), (2, True), (0, False), (2, False)]):\n"
         << "    y = torchvision.ops.roi_align(x, r, output_size=(7, 7), spatial_scale=0.125,\n"
         << "                                  sampling_ratio=sr, aligned=al)\n"
         << "    y.numpy().astype(np.float32).tofile('out%d.bin' % i)\n";
  ASSERT_EQ(oracle.Run(script.str()), "");
  const std::vector<std::pair<int64_t, bool>> configs = {
      {0, true}, {2, true}, {0, false}, {2, false}};
  for (size_t i = 0; i < configs.size(); ++i) {
    SCOPED_TRACE("sampling_ratio " + std::to_string(configs[i].first) + ", aligned " +
                 std::to_string(configs[i].second));
    const at::Tensor expected =
        oracle.Read("out" + std::to_string(i), at::kFloat).view({rois.size(0), c, 7, 7});
    const at::Tensor out = RoiAlign(input, rois, 0.125, 7, 7, configs[i].first, configs[i].second);
    ExpectClose(out, expected, 1e-6, 1e-6);
  }
}

TEST(RoiAlignTest, RejectsBadArguments) {
  const at::Tensor input = at::zeros({2, 3, 8, 8}, at::kFloat);
  const at::Tensor rois = at::zeros({1, 5}, at::kFloat);
  EXPECT_THAT(ErrorOf([&] { RoiAlign(input[0], rois, 1.0, 7, 7, 0, true); }),
              HasSubstr("input must be a 4-D (N, C, H, W) tensor, got 3-D"));
  EXPECT_THAT(ErrorOf([&] { RoiAlign(input, rois.slice(1, 0, 4), 1.0, 7, 7, 0, true); }),
              HasSubstr("rois must have shape (K, 5)"));
  EXPECT_THAT(ErrorOf([&] { RoiAlign(input.to(at::kDouble), rois, 1.0, 7, 7, 0, true); }),
              HasSubstr("input must be float32, got Double"));
  EXPECT_THAT(ErrorOf([&] { RoiAlign(input, rois.to(at::kDouble), 1.0, 7, 7, 0, true); }),
              HasSubstr("rois must be float32, got Double"));
  EXPECT_THAT(ErrorOf([&] { RoiAlign(input, rois, 1.0, 0, 7, 0, true); }),
              HasSubstr("pooled_height and pooled_width must be positive, got 0 and 7"));
  EXPECT_THAT(ErrorOf([&] { RoiAlign(input, rois, 1.0, 7, 7, -1, true); }),
              HasSubstr("sampling_ratio must be in [0, "));
  EXPECT_THAT(ErrorOf([&] { RoiAlign(input, rois, 0.0, 7, 7, 0, true); }),
              HasSubstr("spatial_scale must be finite and positive, got 0"));
  EXPECT_THAT(ErrorOf([&] { RoiAlign(input, rois, NAN, 7, 7, 0, true); }),
              HasSubstr("spatial_scale must be finite and positive"));
  EXPECT_THAT(ErrorOf([&] {
                RoiAlign(at::zeros({2, 3, 0, 8}, at::kFloat), rois, 1.0, 7, 7, 0, true);
              }),
              HasSubstr("input height and width must be positive"));
}

TEST(RoiAlignTest, RejectsBadRoiValues) {
  const at::Tensor input = at::zeros({2, 3, 8, 8}, at::kFloat);
  auto with = [](std::vector<float> roi) {
    return at::from_blob(roi.data(), {1, 5}, at::kFloat).clone();
  };
  EXPECT_THAT(ErrorOf([&] {
                RoiAlign(input, with({2, 0, 0, 4, 4}), 1.0, 7, 7, 0, true);
              }),
              HasSubstr("rois[0] has batch index 2, expected a value in [0, 2)"));
  EXPECT_THAT(ErrorOf([&] {
                RoiAlign(input, with({-1, 0, 0, 4, 4}), 1.0, 7, 7, 0, true);
              }),
              HasSubstr("rois[0] has batch index -1"));
  EXPECT_THAT(ErrorOf([&] {
                RoiAlign(input, with({0, 0, NAN, 4, 4}), 1.0, 7, 7, 0, true);
              }),
              HasSubstr("rois[0][2] must be finite, got nan"));
  EXPECT_THAT(ErrorOf([&] {
                RoiAlign(input, with({0, 0, 0, 1e9f, 4}), 1.0, 7, 7, 0, true);
              }),
              HasSubstr("sample positions, more than the supported"));
}

}  // namespace
}  // namespace iis::ops
