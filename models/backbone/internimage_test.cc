#include "models/backbone/internimage.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "models/testing/state_dict_keys.h"

namespace iis::models::backbone {
namespace {

using testing_keys::KeyShapes;
using testing_keys::ReadKeyFixture;
using testing_keys::StateDictLayout;

class OfficialKeysTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OfficialKeysTest, NamesShapesAndOrderEqualTheOfficialCheckpoint) {
  const std::string variant = GetParam();
  const auto expected = ReadKeyFixture("internimage_" + variant);
  ASSERT_GT(expected.size(), 100u) << "fixture missing: set IIS_SOURCE_DIR to the repository root";
  // Meta tensors: the layout of every variant (G has ~3e9 weights) without allocating it.
  ScopedParameterDevice meta(at::kMeta);
  InternImage model(OfficialClassificationConfig(variant), 1000);
  const KeyShapes actual = StateDictLayout(model);
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i], expected[i]) << "entry " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(AllVariants, OfficialKeysTest,
                         ::testing::Values("t", "s", "b", "l", "xl", "h", "g"));

TEST(DenseBackboneKeysTest, MaskRcnnBackboneKeysEqualTheOfficialCheckpoint) {
  const auto rows = ReadKeyFixture("mask_rcnn_internimage_t_fpn_1x_coco");
  KeyShapes expected;
  for (const auto& r : rows) {
    if (r.first.rfind("backbone.", 0) == 0) expected.emplace_back(r.first.substr(9), r.second);
  }
  ASSERT_EQ(expected.size(), 685u);
  ScopedParameterDevice meta(at::kMeta);
  InternImage backbone(OfficialDenseConfig("t"), /*num_classes=*/0);
  EXPECT_EQ(StateDictLayout(backbone), expected);
}

TEST(InternImageTest, LevelShapesAndLogits) {
  InternImageConfig c = OfficialClassificationConfig("t");
  c.depths = {1, 1, 2, 1};  // reduced depth, official widths
  InternImage model(c, 1000);
  InitRandomWeights(model, 7);
  at::InferenceMode guard;
  const at::Tensor x = at::randn({2, 3, 96, 160});
  const auto levels = model.ForwardLevels(x);
  ASSERT_EQ(levels.size(), 4u);
  const int64_t strides[] = {4, 8, 16, 32};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(levels[i].sizes(),
              (at::IntArrayRef{2, c.LevelChannels(i), 96 / strides[i], 160 / strides[i]}));
    EXPECT_TRUE(levels[i].is_contiguous());
    EXPECT_TRUE(at::isfinite(levels[i]).all().item<bool>());
  }
  const at::Tensor logits = model.HeadLogits(levels);
  EXPECT_EQ(logits.sizes(), (at::IntArrayRef{2, 1000}));
  // Each image is processed independently: image 1 alone gives the same logits.
  const at::Tensor single = model.ForwardLogits(x.slice(0, 1, 2));
  EXPECT_TRUE(at::allclose(single, logits.slice(0, 1, 2), 1e-4, 1e-5));
}

TEST(InternImageTest, RandomWeightsAreDeterministicPerSeed) {
  InternImageConfig c = OfficialClassificationConfig("t");
  c.depths = {1, 1, 1, 1};
  InternImage a(c, 10), b(c, 10), d(c, 10);
  InitRandomWeights(a, 1);
  InitRandomWeights(b, 1);
  InitRandomWeights(d, 2);
  const auto pa = a.named_parameters(), pb = b.named_parameters(), pd = d.named_parameters();
  bool any_differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(at::equal(pa[i].value(), pb[i].value())) << pa[i].key();
    any_differs |= !at::equal(pa[i].value(), pd[i].value());
  }
  EXPECT_TRUE(any_differs);
}

TEST(InternImageTest, InvalidConfigIsRejected) {
  InternImageConfig c = OfficialClassificationConfig("t");
  c.groups[1] = 7;  // 128 channels are not divisible by 7
  EXPECT_THROW(InternImage(c, 0), std::invalid_argument);
  EXPECT_THROW(OfficialClassificationConfig("xxl"), std::invalid_argument);
}

}  // namespace
}  // namespace iis::models::backbone
