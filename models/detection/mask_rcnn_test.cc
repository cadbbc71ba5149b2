#include "models/detection/mask_rcnn.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "models/checkpoint/state_dict.h"
#include "models/detection/box_ops.h"
#include "models/detection/mask_paste.h"
#include "models/preprocess/preprocess.h"
#include "models/testing/state_dict_keys.h"
#include "models/weights.h"
#include "tests/testing/paths.h"

namespace iis::models::detection {
namespace {

using testing_keys::KeyShapes;
using testing_keys::ReadKeyFixture;
using testing_keys::StateDictLayout;

TEST(MaskRcnnKeysTest, NamesShapesAndOrderEqualTheOfficialCheckpoint) {
  const KeyShapes expected = ReadKeyFixture("mask_rcnn_internimage_t_fpn_1x_coco");
  ASSERT_EQ(expected.size(), 727u)
      << "fixture missing: " << testing_keys::KeyFixturePath("mask_rcnn_internimage_t_fpn_1x_coco");
  ScopedParameterDevice meta(at::kMeta);
  MaskRcnn model(*FindArchitecture("mask_rcnn_internimage_t_fpn_1x_coco"));
  const KeyShapes actual = StateDictLayout(model.network());
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(actual[i], expected[i]) << "entry " << i;
}

TEST(MaskRcnnKeysTest, OtherVariantsHaveTheirBackboneWidthsInTheNeck) {
  ScopedParameterDevice meta(at::kMeta);
  for (const char* name :
       {"mask_rcnn_internimage_s_fpn_3x_coco", "mask_rcnn_internimage_b_fpn_1x_coco"}) {
    const Architecture& arch = *FindArchitecture(name);
    MaskRcnn model(arch);
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(model.network().neck->lateral_convs[i]->conv->weight.size(1),
                arch.backbone.LevelChannels(i))
          << name;
    }
  }
  EXPECT_THROW(MaskRcnn(*FindArchitecture("upernet_internimage_t_512_160k_ade20k")),
               std::invalid_argument);
}

// ---- End to end on real photographs, with seeded random weights and a reduced backbone. ----

// The detection pipeline on a reduced scale (keeps the test fast; the code path is the official
// one), returning the image tensor (3, h, w) and its meta.
std::pair<at::Tensor, DenseImageMeta> LoadPhoto(const std::string& name) {
  const std::string bytes = testing_paths::ReadFileBytes(testing_paths::SkimagePhoto(name));
  preprocess::PreprocessSpec spec;
  spec.kind = preprocess::PreprocessKind::kDetection;
  spec.scale_long = 384;
  spec.scale_short = 224;
  const NormalizedImage img =
      preprocess::Preprocess(preprocess::DecodeImage(bytes, true), false, spec);
  return {ImageTensor(img).clone(), MetaOf(img)};
}

class MaskRcnnPhotoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Architecture arch = *FindArchitecture("mask_rcnn_internimage_t_fpn_1x_coco");
    arch.backbone.depths = {1, 1, 1, 1};
    model_ = new MaskRcnn(arch);
    RandomWeights(model_->network(), 0);
    // Random classifier weights give near-uniform class scores (~1/81); widen the logits so that
    // detections pass the 0.05 threshold and NMS, masks and rescaling all get exercised.
    {
      at::NoGradGuard no_grad;
      model_->network().roi_head->bbox_head->fc_cls->weight.mul_(4.0);
    }
    model_->Prepare(RunOptions{});
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (!std::ifstream(testing_paths::SkimagePhoto("astronaut.png")))
      GTEST_SKIP() << "skimage photos not installed";
  }

  // Runs the photos as one batch. Unless `options` says otherwise the tests keep 30 detections,
  // enough to exercise every stage at a third of the mask head's cost.
  static std::vector<ImageDetections> Run(const std::vector<std::string>& names,
                                          DetectionOptions options = TestOptions()) {
    std::vector<at::Tensor> images;
    std::vector<DenseImageMeta> metas;
    for (const auto& n : names) {
      auto [t, m] = LoadPhoto(n);
      images.push_back(t);
      metas.push_back(m);
    }
    return model_->Detect(CollateImages(images, 32), metas, options);
  }

  static DetectionOptions TestOptions() {
    DetectionOptions o;
    o.max_detections = 30;
    return o;
  }

  // Run({name}) with TestOptions, computed once per test program.
  static const ImageDetections& Single(const std::string& name) {
    static std::map<std::string, ImageDetections> cache;
    auto it = cache.find(name);
    if (it == cache.end()) it = cache.emplace(name, Run({name})[0]).first;
    return it->second;
  }

  static MaskRcnn* model_;
};

MaskRcnn* MaskRcnnPhotoTest::model_ = nullptr;

void ExpectSame(const ImageDetections& a, const ImageDetections& b, const std::string& what) {
  EXPECT_TRUE(at::equal(a.boxes, b.boxes)) << what;
  EXPECT_TRUE(at::equal(a.scores, b.scores)) << what;
  EXPECT_TRUE(at::equal(a.labels, b.labels)) << what;
  EXPECT_TRUE(at::equal(a.mask_probs, b.mask_probs)) << what;
}

TEST_F(MaskRcnnPhotoTest, DetectionsAreDeterministicInsideTheImageWithFullSizeMasks) {
  const ImageDetections& d = Single("coffee.png");
  const auto again = Run({"coffee.png"});
  ASSERT_EQ(again.size(), 1u);
  ExpectSame(d, again[0], "second run");
  const int64_t k = d.scores.size(0);
  ASSERT_EQ(k, 30) << "expected at least 30 detections from the widened classifier";
  EXPECT_EQ(d.boxes.sizes(), (at::IntArrayRef{k, 4}));
  EXPECT_EQ(d.mask_probs.sizes(), (at::IntArrayRef{k, kMaskSize, kMaskSize}));
  EXPECT_GT(d.scores.min().item<float>(), kRcnnScoreThreshold);
  EXPECT_TRUE((d.scores.slice(0, 1) <= d.scores.slice(0, 0, -1)).all().item<bool>());
  EXPECT_GE(d.labels.min().item<int64_t>(), 0);
  EXPECT_LT(d.labels.max().item<int64_t>(), 80);
  // coffee.png is 600 x 400; boxes are clipped to the resized image and divided by the scale, so
  // they stay inside the original up to float rounding.
  EXPECT_GE(d.boxes.min().item<float>(), 0.0f);
  EXPECT_LE(d.boxes.slice(1, 0, 4, 2).max().item<float>(), 600.0f * (1 + 1e-6f));
  EXPECT_LE(d.boxes.slice(1, 1, 4, 2).max().item<float>(), 400.0f * (1 + 1e-6f));
  EXPECT_TRUE((d.boxes.select(1, 2) >= d.boxes.select(1, 0)).all().item<bool>());
  // Masks paste at the original size; the RLE covers exactly height * width pixels.
  const auto [t, meta] = LoadPhoto("coffee.png");
  int64_t nonempty = 0;
  for (int64_t i = 0; i < k; ++i) {
    const at::Tensor b = d.boxes[i];
    const auto box = MmdetPasteBox(
        {b[0].item<float>(), b[1].item<float>(), b[2].item<float>(), b[3].item<float>()},
        meta.scale_x, meta.scale_y);
    const at::Tensor probs = d.mask_probs[i].contiguous();
    const MaskWindow m = PasteMask(probs.data_ptr<float>(), kMaskSize, box, 400, 600);
    const std::vector<uint64_t> rle = EncodeRle(m, 400, 600);
    uint64_t total = 0, on = 0;
    for (size_t j = 0; j < rle.size(); ++j) {
      total += rle[j];
      if (j % 2 == 1) on += rle[j];
    }
    EXPECT_EQ(total, 400u * 600u);
    nonempty += on > 0;
  }
  EXPECT_GT(nonempty, 0);
}

TEST_F(MaskRcnnPhotoTest, BatchOfEqualPaddedSizesEqualsSingleImages) {
  // motorcycle_left and motorcycle_right are both 741 x 500: the batch adds no padding to either.
  const auto batched = Run({"motorcycle_left.png", "motorcycle_right.png"});
  ASSERT_EQ(batched.size(), 2u);
  ASSERT_GT(Single("motorcycle_left.png").scores.size(0), 0);
  ExpectSame(batched[0], Single("motorcycle_left.png"), "left");
  ExpectSame(batched[1], Single("motorcycle_right.png"), "right");
}

TEST_F(MaskRcnnPhotoTest, BatchOfMixedSizesIsCloseToSingleImages) {
  // astronaut resizes to 224 x 224 and is padded to coffee's 352 x 224 in the batch. Exact
  // equality cannot hold: the padded zeros are part of the network input, so every convolution
  // and deformable sampling near astronaut's right border sees those zeros instead of its own
  // zero padding at another place, the feature maps get wider (more anchors, other P6 samples)
  // and all later float sums change. Detections stay close.
  const auto batched = Run({"coffee.png", "astronaut.png"});
  ExpectSame(batched[0], Single("coffee.png"), "coffee is the largest image: no padding");
  const ImageDetections& a = Single("astronaut.png");
  const ImageDetections& b = batched[1];
  ASSERT_EQ(a.scores.size(0), 30);
  // With random weights many boxes score alike and the border region matters (boxes near the
  // padded side move), so closeness is counted: a large share of the single-image detections
  // reappear in the batch with the same class and a box within 4 original pixels.
  int64_t matched = 0;
  for (int64_t i = 0; i < a.scores.size(0); ++i) {
    for (int64_t j = 0; j < b.scores.size(0); ++j) {
      if (b.labels[j].item<int64_t>() == a.labels[i].item<int64_t>() &&
          (b.boxes[j] - a.boxes[i]).abs().max().item<float>() < 4.0f) {
        ++matched;
        break;
      }
    }
  }
  EXPECT_GE(matched, 12) << "of 30 detections";
  EXPECT_LT(matched, 30) << "exactly equal: the test no longer exercises padding";
}

TEST_F(MaskRcnnPhotoTest, OptionsOnlyFilterTheOfficialResult) {
  const ImageDetections& full = Single("astronaut.png");
  DetectionOptions strict;
  strict.score_threshold = 0.1;
  strict.max_detections = 5;
  strict.masks = false;
  const ImageDetections filtered = Run({"astronaut.png"}, strict)[0];
  const int64_t expected = std::min<int64_t>(5, (full.scores > 0.1).sum().item<int64_t>());
  ASSERT_GT(expected, 0);
  ASSERT_EQ(filtered.scores.size(0), expected);
  EXPECT_TRUE(at::equal(filtered.boxes, full.boxes.slice(0, 0, expected)));
  EXPECT_TRUE(at::equal(filtered.labels, full.labels.slice(0, 0, expected)));
  EXPECT_FALSE(filtered.mask_probs.defined());
}

TEST_F(MaskRcnnPhotoTest, BadArgumentsAreRejectedWithClearErrors) {
  auto [t, meta] = LoadPhoto("chelsea.png");
  const at::Tensor batch = CollateImages({t}, 32);
  DetectionOptions low;
  low.score_threshold = 0.01;
  EXPECT_THROW(model_->Detect(batch, {meta}, low), c10::Error);
  DetectionOptions many;
  many.max_detections = 101;
  EXPECT_THROW(model_->Detect(batch, {meta}, many), c10::Error);
  EXPECT_THROW(model_->Detect(batch, {meta, meta}), c10::Error);
  DenseImageMeta too_big = meta;
  too_big.height = batch.size(2) + 1;
  try {
    model_->Detect(batch, {too_big});
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("image 0 has height x width"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(model_->Detect(batch.slice(2, 0, 100), {meta}), c10::Error);  // not a multiple of 32
  MaskRcnn unprepared(model_->arch());
  EXPECT_THROW(unprepared.Detect(batch, {meta}), c10::Error);
}

TEST(MaskRcnnWeightsTest, CheckpointEntriesLoadByOfficialName) {
  Architecture arch = *FindArchitecture("mask_rcnn_internimage_t_fpn_1x_coco");
  arch.backbone.depths = {1, 1, 1, 1};
  MaskRcnn model(arch);
  checkpoint::StateDict file("memory");
  for (const auto& p : model.network().named_parameters())
    file.Insert(p.key(), at::full_like(p.value(), 0.25));
  for (const auto& b : model.network().named_buffers()) file.Insert(b.key(), b.value().clone());
  checkpoint::ApplyStateDict(model.network(), file);
  EXPECT_EQ(model.network().roi_head->mask_head->upsample->weight.max().item<float>(), 0.25f);
  checkpoint::StateDict extra("memory");
  for (const auto& e : file) extra.Insert(e.first, e.second);
  extra.Insert("roi_head.bbox_head.unexpected", at::zeros({1}));
  EXPECT_THROW(checkpoint::ApplyStateDict(model.network(), extra), c10::Error);
}

}  // namespace
}  // namespace iis::models::detection
