#include "models/segmentation/upernet.h"

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
#include "models/preprocess/preprocess.h"
#include "models/testing/state_dict_keys.h"
#include "models/weights.h"
#include "tests/testing/paths.h"

namespace iis::models::segmentation {
namespace {

using testing_keys::KeyShapes;
using testing_keys::ReadKeyFixture;
using testing_keys::StateDictLayout;

TEST(UperNetKeysTest, NamesShapesAndOrderEqualTheOfficialCheckpointWithoutTheAuxHead) {
  const KeyShapes rows = ReadKeyFixture("upernet_internimage_t_512_160k_ade20k");
  ASSERT_EQ(rows.size(), 767u) << "fixture missing: "
                               << testing_keys::KeyFixturePath(
                                      "upernet_internimage_t_512_160k_ade20k");
  KeyShapes expected;
  for (const auto& r : rows) {
    if (r.first.rfind("auxiliary_head.", 0) != 0) expected.push_back(r);
  }
  ASSERT_EQ(expected.size(), 685u + 74u);
  ScopedParameterDevice meta(at::kMeta);
  UperNet model(*FindArchitecture("upernet_internimage_t_512_160k_ade20k"));
  const KeyShapes actual = StateDictLayout(model.network());
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(actual[i], expected[i]) << "entry " << i;
}

TEST(UperNetKeysTest, OtherVariantsTakeTheirBackboneWidths) {
  ScopedParameterDevice meta(at::kMeta);
  for (const char* name :
       {"upernet_internimage_b_512_160k_ade20k", "upernet_internimage_xl_640_160k_ade20k"}) {
    const Architecture& arch = *FindArchitecture(name);
    UperNet model(arch);
    const UperHead& head = *model.network().decode_head;
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(head.lateral_convs[i]->conv->weight.size(1), arch.backbone.LevelChannels(i))
          << name;
    }
    EXPECT_EQ(head.bottleneck->conv->weight.size(1), arch.backbone.LevelChannels(3) + 4 * 512)
        << name;
  }
  EXPECT_THROW(UperNet(*FindArchitecture("mask_rcnn_internimage_t_fpn_1x_coco")),
               std::invalid_argument);
}

TEST(UperNetKeysTest, CheckpointRulesSkipTheAuxiliaryHead) {
  Architecture arch = *FindArchitecture("upernet_internimage_t_512_160k_ade20k");
  arch.backbone.depths = {1, 1, 1, 1};
  UperNet model(arch);
  checkpoint::StateDict file("memory");
  for (const auto& p : model.network().named_parameters())
    file.Insert(p.key(), at::full_like(p.value(), 0.5));
  for (const auto& b : model.network().named_buffers()) file.Insert(b.key(), b.value().clone());
  file.Insert("auxiliary_head.conv_seg.weight", at::zeros({150, 256, 1, 1}));
  file.Insert("auxiliary_head.convs.0.conv.weight", at::zeros({256, 256, 3, 3}));
  checkpoint::ApplyOptions strict;
  EXPECT_THROW(checkpoint::ApplyStateDict(model.network(), file, strict), c10::Error);
  checkpoint::ApplyOptions rules;
  rules.ignore_prefixes = UperNet::CheckpointRules().ignore_prefixes;
  const checkpoint::ApplyReport report = checkpoint::ApplyStateDict(model.network(), file, rules);
  EXPECT_EQ(report.skipped, 2);
  EXPECT_EQ(model.network().decode_head->conv_seg->weight.max().item<float>(), 0.5f);
}

// ---- The decode head against a plain ATen transcription of mmseg's UPerHead. ----

at::Tensor ConvBnRelu(const ConvModule& m, const at::Tensor& x) {
  at::Tensor y = at::conv2d(x, m.conv->weight, m.conv->bias, 1, m.padding());
  y = at::batch_norm(y, m.bn->weight, m.bn->bias, m.bn->running_mean, m.bn->running_var, false, 0.0,
                     1e-5, false);
  return at::relu(y);
}

at::Tensor Up(const at::Tensor& x, at::IntArrayRef size) {
  return at::upsample_bilinear2d(x, size, false);
}

at::Tensor UperHeadReference(const UperHead& head, const std::vector<at::Tensor>& in) {
  const at::Tensor& x = in[3];
  std::vector<at::Tensor> psp = {x};
  const int64_t scales[] = {1, 2, 3, 6};
  for (int i = 0; i < 4; ++i) {
    psp.push_back(
        Up(ConvBnRelu(*head.psp_modules[i], at::adaptive_avg_pool2d(x, {scales[i], scales[i]})),
           {x.size(2), x.size(3)}));
  }
  std::vector<at::Tensor> lat;
  for (int i = 0; i < 3; ++i) lat.push_back(ConvBnRelu(*head.lateral_convs[i], in[i]));
  lat.push_back(ConvBnRelu(*head.bottleneck, at::cat(psp, 1)));
  for (int i = 3; i > 0; --i)
    lat[i - 1] = lat[i - 1] + Up(lat[i], {lat[i - 1].size(2), lat[i - 1].size(3)});
  std::vector<at::Tensor> outs;
  for (int i = 0; i < 3; ++i) outs.push_back(ConvBnRelu(*head.fpn_convs[i], lat[i]));
  outs.push_back(lat[3]);
  for (int i = 1; i < 4; ++i) outs[i] = Up(outs[i], {outs[0].size(2), outs[0].size(3)});
  const at::Tensor fused = ConvBnRelu(*head.fpn_bottleneck, at::cat(outs, 1));
  return at::conv2d(fused, head.conv_seg->weight, head.conv_seg->bias);
}

TEST(UperHeadTest, FoldedPlanEqualsThePlainComputation) {
  UperHead head({64, 128, 256, 512}, 512, 150);
  InitRandomWeights(head, 4);
  at::manual_seed(4);
  // A 96 x 160 input: levels of 24x40, 12x20, 6x10, 3x5 (PPM pools 3x5 to 6x6 by repetition).
  std::vector<at::Tensor> in;
  const int64_t widths[] = {64, 128, 256, 512};
  for (int i = 0; i < 4; ++i) in.push_back(at::randn({1, widths[i], 24 >> i, 40 >> i}));
  at::InferenceMode guard;
  const at::Tensor expected = UperHeadReference(head, in);
  const at::Tensor got = UperHeadPlan(head, at::kCPU, at::kFloat).Forward(in);
  ASSERT_EQ(got.sizes(), (at::IntArrayRef{1, 150, 24, 40}));
  const double scale = expected.abs().max().item<double>();
  EXPECT_LT((got - expected).abs().max().item<double>(), 1e-4 * scale + 1e-5);
}

// ---- From logits to the label map: two successive resizes, crop, argmax. ----

at::Tensor LabelMapReference(const at::Tensor& logits, int64_t in_h, int64_t in_w,
                             const DenseImageMeta& m, at::Tensor* cropped) {
  at::Tensor x = Up(logits.unsqueeze(0), {in_h, in_w});
  x = x.slice(2, 0, m.height).slice(3, 0, m.width);
  *cropped = x[0].clone();
  x = Up(x, {m.original_height, m.original_width});
  return at::softmax(x, 1).argmax(1)[0].to(at::kByte);
}

TEST(LogitsToLabelMapTest, EqualsTwoResizesCropAndArgmax) {
  at::manual_seed(8);
  at::InferenceMode guard;
  // Small (single chunk) and large (many chunks of classes) originals.
  for (const auto& [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{{77, 91}, {600, 500}}) {
    const at::Tensor logits = at::randn({150, 16, 24});
    DenseImageMeta m;
    m.height = 60;  // the image fills 60 x 90 of the 64 x 96 input
    m.width = 90;
    m.original_height = oh;
    m.original_width = ow;
    at::Tensor expected_cropped, cropped;
    const at::Tensor expected = LabelMapReference(logits, 64, 96, m, &expected_cropped);
    const at::Tensor got = LogitsToLabelMap(logits, 64, 96, m, &cropped);
    ASSERT_EQ(got.sizes(), (at::IntArrayRef{oh, ow}));
    EXPECT_EQ(got.scalar_type(), at::kByte);
    EXPECT_TRUE(at::equal(got, expected))
        << oh << "x" << ow << ": " << (got != expected).sum().item<int64_t>() << " pixels differ";
    EXPECT_TRUE(at::equal(cropped, expected_cropped));
  }
}

TEST(LogitsToLabelMapTest, TwoResizesAreNotOne) {
  // A single resize straight from 1/4 to the original size gives other labels along edges.
  at::manual_seed(9);
  at::InferenceMode guard;
  const at::Tensor logits = at::randn({150, 16, 24});
  DenseImageMeta m;
  m.height = 64;
  m.width = 96;
  m.original_height = 50;
  m.original_width = 83;
  const at::Tensor two = LogitsToLabelMap(logits, 64, 96, m);
  const at::Tensor one = Up(logits.unsqueeze(0), {50, 83}).argmax(1)[0].to(at::kByte);
  EXPECT_GT((two != one).sum().item<int64_t>(), 0);
}

TEST(LogitsToLabelMapTest, TiesGoToTheLowerClassAcrossChunks) {
  at::InferenceMode guard;
  at::Tensor logits = at::zeros({150, 4, 4});
  logits[3].fill_(1.0);
  logits[140].fill_(1.0);  // equal to class 3, in a later chunk for a large image
  DenseImageMeta m;
  m.height = 16;
  m.width = 16;
  m.original_height = 700;  // 36 classes per chunk: class 140 is in the fourth
  m.original_width = 650;
  const at::Tensor got = LogitsToLabelMap(logits, 16, 16, m);
  EXPECT_TRUE((got == 3).all().item<bool>());
}

TEST(LogitsToLabelMapTest, RejectsBadSizes) {
  DenseImageMeta m = IdentityMeta(32, 32);
  EXPECT_THROW(LogitsToLabelMap(at::zeros({150, 8}), 32, 32, m), c10::Error);
  EXPECT_THROW(LogitsToLabelMap(at::zeros({300, 8, 8}), 32, 32, m), c10::Error);
  EXPECT_THROW(LogitsToLabelMap(at::zeros({150, 8, 8}), 16, 32, m), c10::Error);
}

// ---- End to end on real photographs, seeded random weights, reduced backbone and scale. ----

std::pair<at::Tensor, DenseImageMeta> LoadPhoto(const std::string& name) {
  const std::string bytes = testing_paths::ReadFileBytes(testing_paths::SkimagePhoto(name));
  preprocess::PreprocessSpec spec;
  spec.kind = preprocess::PreprocessKind::kSegmentation;
  spec.scale_long = 512;
  spec.scale_short = 128;
  const NormalizedImage img =
      preprocess::Preprocess(preprocess::DecodeImage(bytes, true), false, spec);
  return {ImageTensor(img).clone(), MetaOf(img)};
}

class UperNetPhotoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Architecture arch = *FindArchitecture("upernet_internimage_t_512_160k_ade20k");
    arch.backbone.depths = {1, 1, 1, 1};
    model_ = new UperNet(arch);
    RandomWeights(model_->network(), 0);
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

  static std::vector<ImageSegmentation> Run(const std::vector<std::string>& names, bool logits) {
    std::vector<at::Tensor> images;
    std::vector<DenseImageMeta> metas;
    for (const auto& n : names) {
      auto [t, m] = LoadPhoto(n);
      images.push_back(t);
      metas.push_back(m);
    }
    SegmentationOptions options;
    options.return_logits = logits;
    return model_->Segment(CollateImages(images, 32), metas, options);
  }

  static const ImageSegmentation& Single(const std::string& name) {
    static std::map<std::string, ImageSegmentation> cache;
    auto it = cache.find(name);
    if (it == cache.end()) it = cache.emplace(name, Run({name}, true)[0]).first;
    return it->second;
  }

  static UperNet* model_;
};

UperNet* UperNetPhotoTest::model_ = nullptr;

TEST_F(UperNetPhotoTest, LabelMapsAreDeterministicAtTheOriginalSize) {
  const ImageSegmentation& a = Single("coffee.png");
  const ImageSegmentation b = Run({"coffee.png"}, false)[0];
  EXPECT_EQ(a.label_map.sizes(), (at::IntArrayRef{400, 600}));
  EXPECT_EQ(a.label_map.scalar_type(), at::kByte);
  EXPECT_TRUE(at::equal(a.label_map, b.label_map));
  EXPECT_FALSE(b.logits.defined());
  // coffee 600 x 400 -> 192 x 128 (already a multiple of 32): logits at the input size.
  EXPECT_EQ(a.logits.sizes(), (at::IntArrayRef{150, 128, 192}));
  EXPECT_LT(a.label_map.max().item<int>(), 150);
  // Random weights still vary over the image.
  EXPECT_GT(std::get<0>(at::_unique(a.label_map)).size(0), 1);
}

TEST_F(UperNetPhotoTest, BatchOfEqualSizesEqualsSingleImages) {
  const auto batched = Run({"motorcycle_left.png", "motorcycle_right.png"}, true);
  const ImageSegmentation& left = Single("motorcycle_left.png");
  const ImageSegmentation& right = Single("motorcycle_right.png");
  EXPECT_EQ(left.label_map.sizes(), (at::IntArrayRef{500, 741}));
  EXPECT_TRUE(at::equal(batched[0].label_map, left.label_map));
  EXPECT_TRUE(at::equal(batched[1].label_map, right.label_map));
  EXPECT_TRUE(at::equal(batched[0].logits, left.logits));
  EXPECT_TRUE(at::equal(batched[1].logits, right.logits));
}

TEST_F(UperNetPhotoTest, BatchOfMixedSizesIsCloseToSingleImages) {
  // astronaut becomes 128 x 128 and is padded to coffee's 192 x 128 in the batch. Exact equality
  // cannot hold: the zeros to its right are network input, so every convolution and deformable
  // sampling near that border, the pyramid pooling averages (which now cover the padding) and
  // every later float sum change. The logits move a little and most labels stay.
  const auto batched = Run({"coffee.png", "astronaut.png"}, true);
  EXPECT_TRUE(at::equal(batched[0].label_map, Single("coffee.png").label_map));
  const ImageSegmentation& single = Single("astronaut.png");
  ASSERT_EQ(batched[1].label_map.sizes(), single.label_map.sizes());
  ASSERT_EQ(batched[1].logits.sizes(), single.logits.sizes());
  const double same =
      (batched[1].label_map == single.label_map).to(at::kDouble).mean().item<double>();
  EXPECT_GT(same, 0.5) << "fraction of equal labels";
  const double corr =
      at::corrcoef(at::stack({batched[1].logits.flatten(), single.logits.flatten()}))[0][1]
          .item<double>();
  EXPECT_GT(corr, 0.9);
}

}  // namespace
}  // namespace iis::models::segmentation
