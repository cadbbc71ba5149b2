#include "models/detection/box_ops.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/roi_align.h"

namespace iis::models::detection {
namespace {

using Box = std::array<float, 4>;

at::Tensor BoxesTensor(const std::vector<Box>& boxes) {
  at::Tensor t = at::empty({static_cast<int64_t>(boxes.size()), 4}, at::kFloat);
  for (size_t i = 0; i < boxes.size(); ++i) {
    for (int k = 0; k < 4; ++k) t[static_cast<int64_t>(i)][k] = boxes[i][k];
  }
  return t;
}

Box RowOf(const at::Tensor& t, int64_t i) {
  const at::Tensor r = t[i].contiguous();
  return {r[0].item<float>(), r[1].item<float>(), r[2].item<float>(), r[3].item<float>()};
}

// Plain greedy NMS in float32 (IoU > thr suppresses), stable by score.
std::vector<int64_t> GreedyNms(const std::vector<Box>& b, const std::vector<float>& s, float thr) {
  std::vector<int64_t> order(b.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return s[i] > s[j]; });
  std::vector<bool> dead(b.size(), false);
  std::vector<int64_t> keep;
  for (size_t oi = 0; oi < order.size(); ++oi) {
    const int64_t i = order[oi];
    if (dead[i]) continue;
    keep.push_back(i);
    for (size_t oj = oi + 1; oj < order.size(); ++oj) {
      const int64_t j = order[oj];
      const float iw = std::max(0.0f, std::min(b[i][2], b[j][2]) - std::max(b[i][0], b[j][0]));
      const float ih = std::max(0.0f, std::min(b[i][3], b[j][3]) - std::max(b[i][1], b[j][1]));
      const float inter = iw * ih;
      const float area_i = (b[i][2] - b[i][0]) * (b[i][3] - b[i][1]);
      const float area_j = (b[j][2] - b[j][0]) * (b[j][3] - b[j][1]);
      const float uni = area_i + area_j - inter;
      if (uni > 0 && inter / uni > thr) dead[j] = true;
    }
  }
  return keep;
}

// Delta decoding written out in double for one box.
Box DecodeOne(const Box& roi, const std::array<double, 4>& d, const std::array<double, 4>& stds,
              double max_h, double max_w) {
  const double px = (roi[0] + roi[2]) * 0.5, py = (roi[1] + roi[3]) * 0.5;
  const double pw = roi[2] - roi[0], ph = roi[3] - roi[1];
  const double limit = std::abs(std::log(16.0 / 1000.0));
  const double dw = std::clamp(d[2] * stds[2], -limit, limit);
  const double dh = std::clamp(d[3] * stds[3], -limit, limit);
  const double gx = px + pw * d[0] * stds[0], gy = py + ph * d[1] * stds[1];
  const double gw = pw * std::exp(dw), gh = ph * std::exp(dh);
  return {static_cast<float>(std::clamp(gx - gw * 0.5, 0.0, max_w)),
          static_cast<float>(std::clamp(gy - gh * 0.5, 0.0, max_h)),
          static_cast<float>(std::clamp(gx + gw * 0.5, 0.0, max_w)),
          static_cast<float>(std::clamp(gy + gh * 0.5, 0.0, max_h))};
}

TEST(AnchorsTest, BaseAnchorsEqualTheSpecTable) {
  // docs/detection-segmentation.md D.2: (x1, y1, x2, y2) per stride for ratios 0.5, 1, 2.
  struct Row {
    int64_t stride;
    double half[3][2];  // (half width, half height) per ratio
  };
  const Row rows[] = {{4, {{22.627417, 11.313708}, {16, 16}, {11.313708, 22.627417}}},
                      {8, {{45.254833, 22.627417}, {32, 32}, {22.627417, 45.254833}}},
                      {16, {{90.509666, 45.254833}, {64, 64}, {45.254833, 90.509666}}},
                      {32, {{181.019333, 90.509666}, {128, 128}, {90.509666, 181.019333}}},
                      {64, {{362.038666, 181.019333}, {256, 256}, {181.019333, 362.038666}}}};
  for (const Row& r : rows) {
    const at::Tensor a = BaseAnchors(r.stride);
    ASSERT_EQ(a.sizes(), (at::IntArrayRef{3, 4}));
    for (int k = 0; k < 3; ++k) {
      const Box b = RowOf(a, k);
      EXPECT_NEAR(b[0], -r.half[k][0], 2e-5) << "stride " << r.stride << " ratio " << k;
      EXPECT_NEAR(b[1], -r.half[k][1], 2e-5) << "stride " << r.stride << " ratio " << k;
      EXPECT_NEAR(b[2], r.half[k][0], 2e-5) << "stride " << r.stride << " ratio " << k;
      EXPECT_NEAR(b[3], r.half[k][1], 2e-5) << "stride " << r.stride << " ratio " << k;
      // Centred exactly on the origin.
      EXPECT_EQ(b[0], -b[2]);
      EXPECT_EQ(b[1], -b[3]);
    }
  }
}

TEST(AnchorsTest, GridOrderIsRowThenColumnThenRatio) {
  const int64_t stride = 8, h = 3, w = 5;
  const at::Tensor grid = GridAnchors(stride, h, w);
  ASSERT_EQ(grid.sizes(), (at::IntArrayRef{h * w * 3, 4}));
  const at::Tensor base = BaseAnchors(stride);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t a = 0; a < 3; ++a) {
        const Box g = RowOf(grid, (y * w + x) * 3 + a), b = RowOf(base, a);
        const float sx = static_cast<float>(x * stride), sy = static_cast<float>(y * stride);
        EXPECT_EQ(g[0], b[0] + sx);
        EXPECT_EQ(g[1], b[1] + sy);
        EXPECT_EQ(g[2], b[2] + sx);
        EXPECT_EQ(g[3], b[3] + sy);
      }
    }
  }
  EXPECT_EQ(GridAnchors(4, 0, 7).size(0), 0);
}

TEST(DecodeDeltasTest, MatchesTheFormulaAndClipsInclusively) {
  at::manual_seed(3);
  const int64_t n = 64, k = 3;
  const at::Tensor xy = at::rand({n, 2}) * 300;
  const at::Tensor rois = at::cat({xy, xy + at::rand({n, 2}) * 200 + 1}, 1);
  const at::Tensor deltas = at::randn({n, 4 * k}) * 1.5;
  const std::array<float, 4> stds = {0.1f, 0.1f, 0.2f, 0.2f};
  const at::Tensor out = DecodeDeltas(rois, deltas, stds, 400, 350);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{n, 4 * k}));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < k; ++c) {
      const at::Tensor d = deltas[i].slice(0, 4 * c, 4 * c + 4).to(at::kDouble);
      const Box expected = DecodeOne(
          RowOf(rois, i),
          {d[0].item<double>(), d[1].item<double>(), d[2].item<double>(), d[3].item<double>()},
          {0.1, 0.1, 0.2, 0.2}, 400, 350);
      const Box got = RowOf(out.view({n, k, 4})[i], c);
      for (int j = 0; j < 4; ++j)
        EXPECT_NEAR(got[j], expected[j], 2e-3) << i << "," << c << "," << j;
    }
  }
  // Clipping reaches exactly the image size (W and H, not W - 1).
  EXPECT_EQ(out.slice(1, 0, 4 * k, 2).max().item<float>(), 350.0f);
  EXPECT_EQ(out.slice(1, 1, 4 * k, 2).max().item<float>(), 400.0f);
  EXPECT_GE(out.min().item<float>(), 0.0f);
}

TEST(DecodeDeltasTest, ZeroDeltasReturnTheRoiAndLargeScalesAreClamped) {
  const at::Tensor rois = BoxesTensor({{10, 20, 50, 40}});
  EXPECT_TRUE(at::equal(DecodeDeltas(rois, at::zeros({1, 4}), {1, 1, 1, 1}, 1000, 1000), rois));
  const at::Tensor centred = BoxesTensor({{5000, 5000, 5040, 5020}});
  const at::Tensor big = DecodeDeltas(centred, at::tensor({0.f, 0.f, 100.f, 100.f}).view({1, 4}),
                                      {1, 1, 1, 1}, 10000, 10000);
  const at::Tensor at_limit = DecodeDeltas(
      centred, at::tensor({0.f, 0.f, 4.135166556742356f, 4.135166556742356f}).view({1, 4}),
      {1, 1, 1, 1}, 10000, 10000);
  EXPECT_TRUE(at::equal(big, at_limit));
  // 16 / 1000 limits the growth to 62.5x: width 40 -> 2500.
  const Box b = RowOf(big, 0);
  EXPECT_NEAR(b[2] - b[0], 2500.0f, 0.05f);
  EXPECT_THROW(DecodeDeltas(rois, at::zeros({2, 4}), {1, 1, 1, 1}, 10, 10), c10::Error);
  EXPECT_THROW(DecodeDeltas(rois, at::zeros({1, 5}), {1, 1, 1, 1}, 10, 10), c10::Error);
}

// An independent transcription of the RPN selection rules for one image.
at::Tensor RpnReference(const std::vector<at::Tensor>& cls, const std::vector<at::Tensor>& reg,
                        const std::vector<at::Tensor>& anchors, int64_t img_h, int64_t img_w,
                        int64_t nms_pre, int64_t max_num) {
  std::vector<Box> boxes;
  std::vector<float> scores;
  std::vector<int64_t> levels;
  for (size_t l = 0; l < cls.size(); ++l) {
    const int64_t a = cls[l].size(0), h = cls[l].size(1), w = cls[l].size(2);
    struct Cand {
      float score;
      int64_t index;
    };
    std::vector<Cand> cands;
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        for (int64_t k = 0; k < a; ++k) {
          const float logit = cls[l][k][y][x].item<float>();
          cands.push_back({1.0f / (1.0f + std::exp(-logit)), (y * w + x) * a + k});
        }
      }
    }
    if (static_cast<int64_t>(cands.size()) > nms_pre) {
      std::stable_sort(cands.begin(), cands.end(),
                       [](const Cand& p, const Cand& q) { return p.score > q.score; });
      cands.resize(nms_pre);
    }
    for (const Cand& c : cands) {
      const int64_t k = c.index % a, cell = c.index / a;
      const int64_t y = cell / w, x = cell % w;
      std::array<double, 4> d;
      for (int j = 0; j < 4; ++j) d[j] = reg[l][k * 4 + j][y][x].item<double>();
      const Box b = DecodeOne(RowOf(anchors[l], c.index), d, {1, 1, 1, 1},
                              static_cast<double>(img_h), static_cast<double>(img_w));
      if (!(b[2] - b[0] > 0 && b[3] - b[1] > 0)) continue;
      boxes.push_back(b);
      scores.push_back(c.score);
      levels.push_back(static_cast<int64_t>(l));
    }
  }
  // NMS within each level, then all survivors by decreasing score.
  std::vector<int64_t> keep;
  for (size_t l = 0; l < cls.size(); ++l) {
    std::vector<int64_t> ids;
    for (size_t i = 0; i < boxes.size(); ++i) {
      if (levels[i] == static_cast<int64_t>(l)) ids.push_back(static_cast<int64_t>(i));
    }
    std::vector<Box> lb;
    std::vector<float> ls;
    for (int64_t i : ids) {
      lb.push_back(boxes[i]);
      ls.push_back(scores[i]);
    }
    for (int64_t j : GreedyNms(lb, ls, 0.7f)) keep.push_back(ids[j]);
  }
  std::stable_sort(keep.begin(), keep.end(), [&](int64_t i, int64_t j) {
    return scores[i] != scores[j] ? scores[i] > scores[j] : i < j;
  });
  if (static_cast<int64_t>(keep.size()) > max_num) keep.resize(max_num);
  at::Tensor out = at::empty({static_cast<int64_t>(keep.size()), 5}, at::kFloat);
  for (size_t i = 0; i < keep.size(); ++i) {
    for (int j = 0; j < 4; ++j) out[static_cast<int64_t>(i)][j] = boxes[keep[i]][j];
    out[static_cast<int64_t>(i)][4] = scores[keep[i]];
  }
  return out;
}

TEST(RpnProposalsTest, MatchesAnIndependentTranscription) {
  at::manual_seed(11);
  const std::vector<std::array<int64_t, 3>> shapes = {{4, 10, 12}, {8, 5, 6}, {16, 3, 3}};
  std::vector<at::Tensor> cls, reg, anchors;
  for (const auto& [stride, h, w] : shapes) {
    cls.push_back(at::randn({3, h, w}) * 2);
    reg.push_back(at::randn({12, h, w}) * 0.3);
    anchors.push_back(GridAnchors(stride, h, w));
  }
  RpnSettings settings;
  settings.nms_pre = 100;  // level 0 (360 anchors) is cut by score, levels 1 and 2 are not
  settings.max_per_image = 60;
  const at::Tensor got = RpnProposals(cls, reg, anchors, 37, 45, settings);
  const at::Tensor expected = RpnReference(cls, reg, anchors, 37, 45, 100, 60);
  ASSERT_EQ(got.size(0), expected.size(0));
  ASSERT_GT(got.size(0), 10);
  EXPECT_TRUE(at::allclose(got, expected, 1e-5, 1e-3)) << got - expected;
  // Scores are in decreasing order and boxes lie inside the unpadded image.
  const at::Tensor s = got.select(1, 4);
  EXPECT_TRUE((s.slice(0, 1) <= s.slice(0, 0, -1)).all().item<bool>());
  EXPECT_LE(got.slice(1, 0, 4, 2).max().item<float>(), 45.0f);
  EXPECT_LE(got.slice(1, 1, 4, 2).max().item<float>(), 37.0f);
}

TEST(RpnProposalsTest, LevelsDoNotSuppressEachOtherAndEmptyBoxesAreDropped) {
  // Two levels of one location each; anchor 0 of both levels decodes to the same box.
  std::vector<at::Tensor> cls = {at::full({3, 1, 1}, 2.0), at::full({3, 1, 1}, 1.0)};
  std::vector<at::Tensor> reg = {at::zeros({12, 1, 1}), at::zeros({12, 1, 1})};
  const at::Tensor a0 = BoxesTensor({{10, 10, 30, 30}, {-50, -50, -40, -40}, {5, 5, 6, 6}});
  const at::Tensor a1 = BoxesTensor({{10, 10, 30, 30}, {10, 10, 29, 30}, {200, 0, 300, 10}});
  const at::Tensor out = RpnProposals(cls, reg, {a0, a1}, 100, 100);
  // Level 0: the box outside the image clips to zero width and is dropped. Level 1: the second
  // box overlaps the first (IoU 0.95) and is suppressed; the third clips to zero width.
  ASSERT_EQ(out.size(0), 3);
  EXPECT_EQ(RowOf(out, 0), (Box{10, 10, 30, 30}));
  EXPECT_EQ(RowOf(out, 1), (Box{5, 5, 6, 6}));
  EXPECT_EQ(RowOf(out, 2), (Box{10, 10, 30, 30}));
  // Nothing valid at all gives (0, 5).
  const at::Tensor none = RpnProposals(
      {cls[0]}, {reg[0]}, {BoxesTensor({{-9, 0, -1, 5}, {0, 0, 0, 5}, {3, 3, 3, 3}})}, 10, 10);
  EXPECT_EQ(none.sizes(), (at::IntArrayRef{0, 5}));
}

TEST(MapRoiLevelsTest, ScaleBoundariesFollowTheFinestScaleRule) {
  auto level_of = [](float side) {
    return MapRoiLevels(BoxesTensor({{0, 0, side, side}}), 4)[0].item<int64_t>();
  };
  EXPECT_EQ(level_of(0.0f), 0);
  EXPECT_EQ(level_of(50.0f), 0);
  EXPECT_EQ(level_of(111.99f), 0);
  EXPECT_EQ(level_of(112.0f), 1);
  EXPECT_EQ(level_of(223.9f), 1);
  EXPECT_EQ(level_of(224.0f), 2);
  EXPECT_EQ(level_of(447.9f), 2);
  EXPECT_EQ(level_of(448.0f), 3);
  EXPECT_EQ(level_of(5000.0f), 3);
  // sqrt(w * h), not the longer side: 56 x 896 has scale 224.
  EXPECT_EQ(MapRoiLevels(BoxesTensor({{10, 10, 66, 906}}), 4)[0].item<int64_t>(), 2);
}

TEST(ExtractRoiFeaturesTest, PoolsEachRoiFromItsLevel) {
  at::manual_seed(5);
  std::vector<at::Tensor> feats;
  for (int64_t s : kRoiStrides) feats.push_back(at::randn({2, 8, 512 / s, 640 / s}));
  const at::Tensor rois = at::tensor({0.f, 10.f,  20.f, 60.f,  70.f,    // scale 50 -> P2
                                      1.f, 0.f,   0.f,  150.f, 150.f,   // 150 -> P3
                                      0.f, 100.f, 50.f, 400.f, 350.f,   // 300 -> P4
                                      1.f, 0.f,   0.f,  639.f, 511.f})  // ~572 -> P5
                              .view({4, 5});
  const at::Tensor out = ExtractRoiFeatures(feats, rois, 7);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{4, 8, 7, 7}));
  for (int64_t i = 0; i < 4; ++i) {
    const at::Tensor direct =
        ops::RoiAlign(feats[i], rois.slice(0, i, i + 1), 1.0 / static_cast<double>(kRoiStrides[i]),
                      7, 7, 0, true);
    EXPECT_TRUE(at::equal(out.slice(0, i, i + 1), direct)) << "roi " << i;
  }
  EXPECT_EQ(ExtractRoiFeatures(feats, at::zeros({0, 5}), 14).sizes(),
            (at::IntArrayRef{0, 8, 14, 14}));
}

// Scores (n, C + 1) from per-class values with a background column.
at::Tensor Scores(const std::vector<std::vector<float>>& rows) {
  at::Tensor t =
      at::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t c = 0; c < rows[i].size(); ++c)
      t[static_cast<int64_t>(i)][static_cast<int64_t>(c)] = rows[i][c];
  }
  return t;
}

TEST(MulticlassNmsTest, ThresholdIsStrictAndBackgroundIsIgnored) {
  const at::Tensor boxes = BoxesTensor({{0, 0, 10, 10}, {0, 0, 10, 10}}).repeat({1, 2});  // (2, 8)
  const float thr = 0.05f;
  const float above = std::nextafter(thr, 1.0f);
  const at::Tensor scores = Scores({{thr, above, 0.99f}, {0.01f, 0.0f, 0.9f}});
  const Detections d = MulticlassNms(boxes, scores, 0.05, 0.5, 100);
  ASSERT_EQ(d.scores.size(0), 1);
  EXPECT_EQ(d.scores[0].item<float>(), above);
  EXPECT_EQ(d.labels[0].item<int64_t>(), 1);
}

TEST(MulticlassNmsTest, ClassAwareSuppressionTiesAndCap) {
  // Roi 0 and roi 1 have the same box for class 0 (suppressed within the class); class 1 uses a
  // box identical to class 0's but is never suppressed by it.
  const at::Tensor boxes = at::cat({BoxesTensor({{0, 0, 10, 10}, {0, 0, 10, 10}}),
                                    BoxesTensor({{0, 0, 10, 10}, {0, 0, 10, 10}})},
                                   1);
  const at::Tensor scores = Scores({{0.6f, 0.6f, 0.0f}, {0.6f, 0.3f, 0.0f}});
  const Detections d = MulticlassNms(boxes, scores, 0.05, 0.5, 100);
  // Candidates roi-major: (0,c0) 0.6, (0,c1) 0.6, (1,c0) 0.6, (1,c1) 0.3. Ties keep the lower
  // candidate index: (0,c0) then (0,c1); (1,c0) and (1,c1) are suppressed within their class.
  ASSERT_EQ(d.labels.size(0), 2);
  EXPECT_EQ(d.labels[0].item<int64_t>(), 0);
  EXPECT_EQ(d.labels[1].item<int64_t>(), 1);
  // IoU exactly 0.5 is kept (suppression needs > 0.5): [0,10]x[0,10] vs [0,10]x[0,20] has IoU 0.5.
  const at::Tensor b2 = BoxesTensor({{0, 0, 10, 10}, {0, 0, 10, 20}});
  EXPECT_EQ(MulticlassNms(b2, Scores({{0.9f, 0.0f}, {0.8f, 0.0f}}), 0.05, 0.5, 100).labels.size(0),
            2);
  // The cap keeps the best max_num of the uncapped result.
  at::manual_seed(2);
  const at::Tensor xy = at::rand({300, 2}) * 1000;
  const at::Tensor small_boxes = at::cat({xy, xy + 5}, 1);
  const at::Tensor sc = at::cat({at::rand({300, 1}) * 0.9 + 0.06, at::zeros({300, 1})}, 1);
  const Detections capped = MulticlassNms(small_boxes, sc, 0.05, 0.5, 100);
  const Detections all = MulticlassNms(small_boxes, sc, 0.05, 0.5, 0);
  ASSERT_EQ(capped.scores.size(0), 100);
  ASSERT_GT(all.scores.size(0), 100);
  EXPECT_TRUE(at::equal(capped.boxes, all.boxes.slice(0, 0, 100)));
  EXPECT_TRUE(at::equal(capped.labels, all.labels.slice(0, 0, 100)));
}

TEST(MulticlassNmsTest, EmptyAfterThresholdGivesEmptyResults) {
  const Detections d =
      MulticlassNms(BoxesTensor({{0, 0, 1, 1}}), Scores({{0.01f, 0.99f}}), 0.05, 0.5, 100);
  EXPECT_EQ(d.boxes.sizes(), (at::IntArrayRef{0, 4}));
  EXPECT_EQ(d.scores.size(0), 0);
  EXPECT_EQ(d.labels.size(0), 0);
}

}  // namespace
}  // namespace iis::models::detection
