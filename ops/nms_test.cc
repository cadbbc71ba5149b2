#include "ops/nms.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ops/testing/nms_reference.h"
#include "ops/testing/torchvision_oracle.h"

namespace iis::ops {
namespace {

using reference::Box;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

at::Tensor BoxTensor(const std::vector<Box>& boxes) {
  at::Tensor t = at::empty({static_cast<int64_t>(boxes.size()), 4}, at::kFloat);
  for (size_t i = 0; i < boxes.size(); ++i) {
    for (int k = 0; k < 4; ++k) t.data_ptr<float>()[i * 4 + k] = boxes[i][k];
  }
  return t;
}

at::Tensor FloatTensor(const std::vector<float>& values) {
  return at::from_blob(const_cast<float*>(values.data()), {static_cast<int64_t>(values.size())},
                       at::kFloat)
      .clone();
}

at::Tensor LongTensor(const std::vector<int64_t>& values) {
  return at::from_blob(const_cast<int64_t*>(values.data()), {static_cast<int64_t>(values.size())},
                       at::kLong)
      .clone();
}

std::vector<int64_t> ToVector(const at::Tensor& t) {
  EXPECT_EQ(t.scalar_type(), at::kLong);
  EXPECT_EQ(t.dim(), 1);
  const at::Tensor c = t.contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::vector<int64_t> RunNms(const std::vector<Box>& boxes, const std::vector<float>& scores,
                            double threshold) {
  return ToVector(Nms(BoxTensor(boxes), FloatTensor(scores), threshold));
}

std::vector<int64_t> RunBatchedNms(const std::vector<Box>& boxes, const std::vector<float>& scores,
                                   const std::vector<int64_t>& idxs, double threshold) {
  return ToVector(BatchedNms(BoxTensor(boxes), FloatTensor(scores), LongTensor(idxs), threshold));
}

// Random detections clustered around `objects` objects, like RPN proposals or per-class RCNN
// boxes: many heavy overlaps, some isolated boxes, some degenerate ones. With `integral` the
// coordinates are small integers, so class offsets never change any rounding.
struct Detections {
  std::vector<Box> boxes;
  std::vector<float> scores;
  std::vector<int64_t> idxs;
};
Detections RandomDetections(std::mt19937* rng, int64_t n, int objects, int64_t classes,
                            bool integral) {
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<Box> centres(objects);
  for (Box& o : centres) {
    const float w = 8.0f + 120.0f * unit(*rng);
    const float h = 8.0f + 120.0f * unit(*rng);
    const float x = 400.0f * unit(*rng);
    const float y = 300.0f * unit(*rng);
    o = {x, y, x + w, y + h};
  }
  // Distinct scores: torchvision's sorts are not stable, so parity needs an order without ties.
  std::vector<int64_t> rank(n);
  for (int64_t i = 0; i < n; ++i) rank[i] = i;
  std::shuffle(rank.begin(), rank.end(), *rng);
  Detections d;
  for (int64_t i = 0; i < n; ++i) {
    const Box& o = centres[(*rng)() % objects];
    const float w = o[2] - o[0];
    const float h = o[3] - o[1];
    Box b;
    for (int k = 0; k < 4; ++k) {
      const float scale = (k % 2 == 0) ? w : h;
      b[k] = o[k] + 0.25f * scale * (unit(*rng) - 0.5f);
    }
    const float kind = unit(*rng);
    if (kind < 0.02f) b[2] = b[0];            // zero width
    if (kind > 0.98f) std::swap(b[0], b[2]);  // inverted
    if (integral) {
      for (float& v : b) v = std::round(v);
    }
    d.boxes.push_back(b);
    d.scores.push_back(static_cast<float>(rank[i] + 1) / static_cast<float>(n + 1));
    d.idxs.push_back(static_cast<int64_t>((*rng)() % classes));
  }
  return d;
}

std::string ErrorOf(const std::function<void()>& call) {
  try {
    call();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

TEST(NmsTest, EmptyInput) {
  EXPECT_THAT(RunNms({}, {}, 0.5), IsEmpty());
  EXPECT_THAT(RunBatchedNms({}, {}, {}, 0.5), IsEmpty());
}

TEST(NmsTest, SingleBox) {
  EXPECT_THAT(RunNms({{1, 2, 3, 4}}, {0.3f}, 0.5), ElementsAre(0));
  EXPECT_THAT(RunBatchedNms({{1, 2, 3, 4}}, {0.3f}, {7}, 0.5), ElementsAre(0));
}

TEST(NmsTest, KeepsByDecreasingScore) {
  // 0 and 2 overlap (IoU 0.81), 1 is apart.
  const std::vector<Box> boxes = {{0, 0, 10, 10}, {20, 20, 30, 30}, {0, 0, 9, 9}};
  EXPECT_THAT(RunNms(boxes, {0.5f, 0.7f, 0.9f}, 0.5), ElementsAre(2, 1));
}

TEST(NmsTest, TiesKeepTheLowerIndexFirst) {
  const std::vector<Box> apart = {{0, 0, 1, 1}, {5, 5, 6, 6}, {10, 10, 11, 11}, {20, 0, 21, 1}};
  EXPECT_THAT(RunNms(apart, {0.5f, 0.9f, 0.5f, 0.5f}, 0.5), ElementsAre(1, 0, 2, 3));
  const std::vector<Box> identical = {{0, 0, 4, 4}, {0, 0, 4, 4}, {0, 0, 4, 4}};
  EXPECT_THAT(RunNms(identical, {0.5f, 0.5f, 0.5f}, 0.5), ElementsAre(0));
  EXPECT_THAT(RunBatchedNms(apart, {0.5f, 0.5f, 0.5f, 0.5f}, {3, 2, 1, 0}, 0.5),
              ElementsAre(0, 1, 2, 3));
}

TEST(NmsTest, IdenticalBoxesKeepOnlyTheBest) {
  const std::vector<Box> boxes(5, Box{3, 4, 30, 40});
  EXPECT_THAT(RunNms(boxes, {0.1f, 0.5f, 0.3f, 0.9f, 0.2f}, 0.99), ElementsAre(3));
  // IoU 1 is not > 1: at threshold 1 nothing is ever suppressed.
  EXPECT_THAT(RunNms(boxes, {0.1f, 0.5f, 0.3f, 0.9f, 0.2f}, 1.0), ElementsAre(3, 1, 2, 4, 0));
}

TEST(NmsTest, ZeroAreaBoxesNeverSuppress) {
  // Two identical zero-area boxes (union 0: IoU counts as 0), a line inside a box, a point.
  const std::vector<Box> boxes = {
      {5, 5, 5, 9}, {5, 5, 5, 9}, {0, 0, 10, 10}, {2, 2, 2, 2}, {2, 2, 8, 2}};
  EXPECT_THAT(RunNms(boxes, {0.9f, 0.8f, 0.7f, 0.6f, 0.5f}, 0.0), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_FLOAT_EQ(reference::Iou(boxes[0], boxes[1]), 0.0f);
}

TEST(NmsTest, IouExactlyAtTheThresholdIsKept) {
  // IoU = 5 / 10 = 0.5 exactly.
  const std::vector<Box> half = {{0, 0, 10, 1}, {0, 0, 5, 1}};
  EXPECT_THAT(RunNms(half, {0.9f, 0.8f}, 0.5), ElementsAre(0, 1));
  EXPECT_THAT(RunNms(half, {0.9f, 0.8f}, 0.4999), ElementsAre(0));
  // IoU = 3 / 10, computed in float32 = float(0.3) > 0.3: kept at threshold 0.3 because the
  // threshold is compared as float32 (mmcv), where torchvision's double comparison would suppress.
  const std::vector<Box> third = {{0, 0, 10, 1}, {0, 0, 3, 1}};
  ASSERT_EQ(reference::Iou(third[0], third[1]), static_cast<float>(0.3));
  EXPECT_THAT(RunNms(third, {0.9f, 0.8f}, 0.3), ElementsAre(0, 1));
  EXPECT_THAT(RunNms(third, {0.9f, 0.8f}, 0.2999), ElementsAre(0));
}

TEST(NmsTest, NanScoresComeFirst) {
  const std::vector<Box> apart = {{0, 0, 1, 1}, {5, 5, 6, 6}, {10, 10, 11, 11}};
  EXPECT_THAT(RunNms(apart, {0.5f, NAN, 0.9f}, 0.5), ElementsAre(1, 2, 0));
}

TEST(NmsTest, MatchesReferenceOnRandomCases) {
  for (const int seed : {1, 2, 3}) {
    for (const double threshold : {0.0, 0.3, 0.5, 0.7, 1.0}) {
      std::mt19937 rng(seed);
      const Detections d = RandomDetections(&rng, 400, 12, 1, false);
      EXPECT_EQ(RunNms(d.boxes, d.scores, threshold),
                reference::NmsReference(d.boxes, d.scores, static_cast<float>(threshold)))
          << "seed " << seed << " threshold " << threshold;
    }
  }
}

TEST(BatchedNmsTest, ClassesDoNotSuppressEachOther) {
  const std::vector<Box> boxes = {{0, 0, 10, 10}, {0, 0, 10, 10}, {1, 1, 10, 10}};
  EXPECT_THAT(RunBatchedNms(boxes, {0.9f, 0.8f, 0.7f}, {0, 1, 0}, 0.5), ElementsAre(0, 1));
}

// mmcv's offset trick assumes coordinates >= -1: with negative maxima the shifted classes
// overlap and suppress each other. Replicated on purpose (bit-for-bit parity).
TEST(BatchedNmsTest, ReplicatesTheOffsetTrickWithNegativeCoordinates) {
  // max coordinate -6, so class 1 moves by 1 * (-6 + 1) = -5 onto class 0's box.
  const std::vector<Box> boxes = {{-20, -20, -10, -10}, {-16, -16, -6, -6}};
  EXPECT_THAT(RunBatchedNms(boxes, {0.9f, 0.8f}, {0, 1}, 0.5), ElementsAre(0));
  EXPECT_THAT(
      reference::BatchedNmsReference(boxes, {0.9f, 0.8f}, {0, 1}, 0.5f, kBatchedNmsSplitThreshold),
      ElementsAre(0));
}

// Below 10000 boxes the CPU kernel runs one pass per class when all coordinates are >= 0 (the
// classes provably cannot interact after mmcv's shift) and mmcv's single pass otherwise: both
// must keep exactly what mmcv's single pass keeps.
TEST(BatchedNmsTest, ManyClassesMatchReference) {
  for (const int seed : {11, 12}) {
    std::mt19937 rng(seed);
    Detections d = RandomDetections(&rng, 3000, 40, 80, false);
    for (const float shift : {0.0f, -400.0f}) {
      std::vector<Box> boxes = d.boxes;
      for (Box& b : boxes) {
        for (float& v : b) v = std::max(v, 0.0f) + shift;
      }
      for (const double threshold : {0.5, 0.7}) {
        EXPECT_EQ(
            RunBatchedNms(boxes, d.scores, d.idxs, threshold),
            reference::BatchedNmsReference(boxes, d.scores, d.idxs, static_cast<float>(threshold),
                                           kBatchedNmsSplitThreshold))
            << "seed " << seed << " shift " << shift << " threshold " << threshold;
      }
    }
  }
}

TEST(BatchedNmsTest, SingleCallPathEqualsPerClassNmsOnIntegerBoxes) {
  std::mt19937 rng(5);
  const Detections d = RandomDetections(&rng, 2000, 30, 5, true);
  EXPECT_EQ(RunBatchedNms(d.boxes, d.scores, d.idxs, 0.5),
            reference::PerClassNmsReference(d.boxes, d.scores, d.idxs, 0.5f));
}

// N >= 10000 takes mmcv's per-class path (the RCNN stage: up to 1000 RoIs x 80 classes).
TEST(BatchedNmsTest, SplitPathEqualsPerClassReference) {
  std::mt19937 rng(6);
  const Detections d = RandomDetections(&rng, kBatchedNmsSplitThreshold + 2000, 60, 40, true);
  const std::vector<int64_t> keep = RunBatchedNms(d.boxes, d.scores, d.idxs, 0.5);
  EXPECT_EQ(keep, reference::PerClassNmsReference(d.boxes, d.scores, d.idxs, 0.5f));
  EXPECT_EQ(keep, reference::BatchedNmsReference(d.boxes, d.scores, d.idxs, 0.5f,
                                                 kBatchedNmsSplitThreshold));
}

TEST(BatchedNmsTest, SplitPathOnFloatBoxesMatchesMmcvTranscription) {
  std::mt19937 rng(8);
  const Detections d = RandomDetections(&rng, kBatchedNmsSplitThreshold, 50, 80, false);
  EXPECT_EQ(
      RunBatchedNms(d.boxes, d.scores, d.idxs, 0.5),
      reference::BatchedNmsReference(d.boxes, d.scores, d.idxs, 0.5f, kBatchedNmsSplitThreshold));
}

TEST(BatchedNmsTest, AcceptsInt32Idxs) {
  std::mt19937 rng(9);
  const Detections d = RandomDetections(&rng, 500, 10, 7, false);
  const at::Tensor boxes = BoxTensor(d.boxes);
  const at::Tensor scores = FloatTensor(d.scores);
  const at::Tensor idxs = LongTensor(d.idxs);
  EXPECT_TRUE(BatchedNms(boxes, scores, idxs.to(at::kInt), 0.6)
                  .equal(BatchedNms(boxes, scores, idxs, 0.6)));
}

TEST(NmsTest, MatchesTorchvision) {
  if (!reference::TorchvisionOracle::Unavailable().empty()) {
    GTEST_SKIP() << reference::TorchvisionOracle::Unavailable();
  }
  // torchvision's batched_nms uses the same offset trick up to 1000 boxes on the CPU and plain
  // per-class NMS above; the large case has integer boxes, where both ways round alike, and goes
  // through our N >= 10000 path.
  std::mt19937 rng(31);
  const Detections single = RandomDetections(&rng, 1500, 25, 1, false);
  const Detections multi = RandomDetections(&rng, 1000, 40, 80, false);
  const Detections large = RandomDetections(&rng, 12000, 60, 40, true);
  reference::TorchvisionOracle oracle;
  for (const auto& [name, d] : {std::pair<std::string, const Detections*>{"single", &single},
                                {"multi", &multi},
                                {"large", &large}}) {
    oracle.Write(name + "_boxes", BoxTensor(d->boxes));
    oracle.Write(name + "_scores", FloatTensor(d->scores));
    oracle.Write(name + "_idxs", LongTensor(d->idxs));
  }
  const std::string script =
      "import numpy as np, torch, torchvision\n"
      "def load(name):\n"
      "    return (torch.from_numpy(np.fromfile(name + '_boxes.bin', np.float32).reshape(-1, 4)),\n"
      "            torch.from_numpy(np.fromfile(name + '_scores.bin', np.float32)),\n"
      "            torch.from_numpy(np.fromfile(name + '_idxs.bin', np.int64)))\n"
      "single, multi, large = load('single'), load('multi'), load('large')\n"
      "for t in (0.3, 0.5, 0.7):\n"
      "    torchvision.ops.nms(single[0], single[1], t).numpy().tofile('nms_%g.bin' % t)\n"
      "    torchvision.ops.batched_nms(*multi, t).numpy().tofile('multi_%g.bin' % t)\n"
      "    torchvision.ops.batched_nms(*large, t).numpy().tofile('large_%g.bin' % t)\n";
  ASSERT_EQ(oracle.Run(script), "");
  for (const double t : {0.3, 0.5, 0.7}) {
    std::ostringstream suffix;
    suffix << t;
    EXPECT_EQ(RunNms(single.boxes, single.scores, t),
              ToVector(oracle.Read("nms_" + suffix.str(), at::kLong)))
        << "threshold " << t;
    EXPECT_EQ(RunBatchedNms(multi.boxes, multi.scores, multi.idxs, t),
              ToVector(oracle.Read("multi_" + suffix.str(), at::kLong)))
        << "threshold " << t;
    EXPECT_EQ(RunBatchedNms(large.boxes, large.scores, large.idxs, t),
              ToVector(oracle.Read("large_" + suffix.str(), at::kLong)))
        << "threshold " << t;
  }
}

TEST(NmsTest, RejectsBadArguments) {
  const at::Tensor boxes = at::zeros({3, 4}, at::kFloat);
  const at::Tensor scores = at::zeros({3}, at::kFloat);
  const at::Tensor idxs = at::zeros({3}, at::kLong);
  EXPECT_THAT(ErrorOf([&] { Nms(boxes.slice(1, 0, 3), scores, 0.5); }),
              HasSubstr("iis::nms: boxes must have shape (N, 4) [x1, y1, x2, y2], got [3, 3]"));
  EXPECT_THAT(ErrorOf([&] {
                Nms(boxes, scores.view({3, 1}), 0.5);
              }),
              HasSubstr("scores must be 1-D (N,), got shape [3, 1]"));
  EXPECT_THAT(ErrorOf([&] { Nms(boxes, scores.slice(0, 0, 2), 0.5); }),
              HasSubstr("scores must have one entry per box (3), got 2"));
  EXPECT_THAT(ErrorOf([&] { Nms(boxes.to(at::kDouble), scores, 0.5); }),
              HasSubstr("boxes must be float32, got Double"));
  EXPECT_THAT(ErrorOf([&] { Nms(boxes, scores.to(at::kHalf), 0.5); }),
              HasSubstr("scores must be float32, got Half"));
  EXPECT_THAT(ErrorOf([&] { Nms(boxes, scores, -0.1); }),
              HasSubstr("iou_threshold must be in [0, 1], got -0.1"));
  EXPECT_THAT(ErrorOf([&] { Nms(boxes, scores, 1.5); }),
              HasSubstr("iou_threshold must be in [0, 1], got 1.5"));
  EXPECT_THAT(ErrorOf([&] { Nms(boxes, scores, NAN); }),
              HasSubstr("iou_threshold must be in [0, 1], got nan"));
  EXPECT_THAT(ErrorOf([&] { BatchedNms(boxes, scores, idxs.slice(0, 0, 2), 0.5); }),
              HasSubstr("iis::batched_nms: idxs must have shape (N,) with N = 3"));
  EXPECT_THAT(ErrorOf([&] { BatchedNms(boxes, scores, idxs.to(at::kFloat), 0.5); }),
              HasSubstr("idxs must have an integer dtype, got Float"));
  EXPECT_THAT(ErrorOf([&] { BatchedNms(boxes, scores, idxs, 2.0); }),
              HasSubstr("iis::batched_nms: iou_threshold must be in [0, 1]"));
}

}  // namespace
}  // namespace iis::ops
