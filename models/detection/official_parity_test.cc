// The Mask R-CNN stages against outputs of the official mmdetection 2.x / mmcv 1.x code, stored
// in tests/fixtures/detseg/ by tests/parity/make_dense_fixtures.py (see there for how the official
// functions were run, under Debian's PyTorch 1.13). Decisions (which boxes survive, their order,
// labels, levels, mask pixels) must be identical. Float values must be bit-identical under
// LibTorch 1.13, the fixtures' own: same float32 operations in the same order; other LibTorch
// versions may round exp/sigmoid/softmax differently in the last bit, so there they are compared
// to 1e-6 relative.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/version.h>

#include <cstring>
#include <string>
#include <vector>

#include "models/detection/box_ops.h"
#include "models/detection/mask_paste.h"
#include "models/npy.h"
#include "tests/testing/paths.h"

namespace iis::models::detection {
namespace {

at::Tensor Fixture(const std::string& name) {
  const NpyArray a =
      ReadNpy(testing_paths::SourceDir() + "/tests/fixtures/detseg/" + name + ".npy");
  at::ScalarType type = at::kFloat;
  if (a.dtype == "<i8") type = at::kLong;
  if (a.dtype == "|u1") type = at::kByte;
  if (a.dtype != "<f4" && a.dtype != "<i8" && a.dtype != "|u1") {
    ADD_FAILURE() << name << ": unexpected dtype " << a.dtype;
  }
  at::Tensor t = at::empty(a.shape, type);
  std::memcpy(t.data_ptr(), a.data.data(), a.data.size());
  return t;
}

// Checks float outputs: exact under the fixtures' LibTorch, within float rounding elsewhere.
void ExpectSameValues(const at::Tensor& got, const at::Tensor& expected, const std::string& what) {
  ASSERT_EQ(got.sizes(), expected.sizes()) << what;
  constexpr bool kFixturesLibTorch = TORCH_VERSION_MAJOR == 1 && TORCH_VERSION_MINOR == 13;
  if (kFixturesLibTorch) {
    EXPECT_TRUE(at::equal(got, expected))
        << what << ": max difference " << (got - expected).abs().max().item<float>();
  } else {
    EXPECT_TRUE(at::allclose(got, expected, 1e-6, 1e-4)) << what;
  }
}

const std::vector<std::array<int64_t, 2>> kSizes = {{32, 40}, {16, 20}, {8, 10}, {4, 5}, {2, 3}};

TEST(OfficialParityTest, Anchors) {
  std::vector<at::Tensor> mine;
  for (size_t l = 0; l < kSizes.size(); ++l)
    mine.push_back(GridAnchors(kRpnStrides[l], kSizes[l][0], kSizes[l][1]));
  ExpectSameValues(at::cat(mine), Fixture("anchors"), "anchors");
}

TEST(OfficialParityTest, RpnProposals) {
  std::vector<at::Tensor> cls, reg, anchors;
  for (size_t l = 0; l < kSizes.size(); ++l) {
    cls.push_back(Fixture("rpn_cls_" + std::to_string(l)));
    reg.push_back(Fixture("rpn_reg_" + std::to_string(l)));
    anchors.push_back(GridAnchors(kRpnStrides[l], kSizes[l][0], kSizes[l][1]));
  }
  const at::Tensor got = RpnProposals(cls, reg, anchors, 118, 150);
  const at::Tensor expected = Fixture("rpn_proposals");
  ExpectSameValues(got, expected, "proposals");
}

TEST(OfficialParityTest, DeltaDecoding) {
  const at::Tensor got =
      DecodeDeltas(Fixture("decode_rois"), Fixture("decode_deltas"), kRcnnStds, 500, 450);
  ExpectSameValues(got, Fixture("decode_boxes"), "decoded boxes");
}

TEST(OfficialParityTest, RoiLevels) {
  const at::Tensor rois = Fixture("roi_level_rois");
  EXPECT_TRUE(at::equal(MapRoiLevels(rois.slice(1, 1, 5).contiguous(), 4), Fixture("roi_levels")));
}

void ExpectRcnnParity(const std::string& name) {
  const Detections d =
      RcnnPostprocess(Fixture(name + "_rois"), Fixture(name + "_cls_score"),
                      Fixture(name + "_bbox_pred"), 333, 420, 0.6671875f, 0.6666667f);
  const at::Tensor dets = Fixture(name + "_dets");
  ASSERT_EQ(d.boxes.size(0), dets.size(0)) << name;
  ExpectSameValues(d.boxes, dets.slice(1, 0, 4), name + " boxes");
  ExpectSameValues(d.scores, dets.select(1, 4), name + " scores");
  EXPECT_TRUE(at::equal(d.labels, Fixture(name + "_labels"))) << name;
}

TEST(OfficialParityTest, RcnnPostprocessSingleNmsCall) { ExpectRcnnParity("rcnn_small"); }

TEST(OfficialParityTest, RcnnPostprocessSplitPath) { ExpectRcnnParity("rcnn_split"); }

TEST(OfficialParityTest, MaskPaste) {
  const at::Tensor masks = Fixture("paste_masks"), boxes = Fixture("paste_boxes");
  const at::Tensor expected = Fixture("paste_out");
  for (int64_t i = 0; i < masks.size(0); ++i) {
    const at::Tensor b = boxes[i];
    const MaskWindow m = PasteMask(
        masks[i].data_ptr<float>(), 28,
        {b[0].item<float>(), b[1].item<float>(), b[2].item<float>(), b[3].item<float>()}, 50, 70);
    at::Tensor full = at::zeros({50, 70}, at::kByte);
    for (int y = 0; y < 50; ++y) {
      for (int x = 0; x < 70; ++x) full[y][x] = m.At(x, y);
    }
    EXPECT_TRUE(at::equal(full, expected[i]))
        << "mask " << i << ": " << (full != expected[i]).sum().item<int64_t>() << " pixels differ";
  }
}

}  // namespace
}  // namespace iis::models::detection
