#include "models/dense_batch.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace iis::models {
namespace {

TEST(CollateImagesTest, PadsBottomRightWithZerosToTheRoundedMaximum) {
  const at::Tensor a = at::rand({3, 40, 70}) + 1, b = at::rand({3, 65, 33}) + 1;
  const at::Tensor batch = CollateImages({a, b}, 32);
  ASSERT_EQ(batch.sizes(), (at::IntArrayRef{2, 3, 96, 96}));
  EXPECT_TRUE(at::equal(batch[0].slice(1, 0, 40).slice(2, 0, 70), a));
  EXPECT_TRUE(at::equal(batch[1].slice(1, 0, 65).slice(2, 0, 33), b));
  // Everything else is zero.
  at::Tensor rest = batch.clone();
  rest[0].slice(1, 0, 40).slice(2, 0, 70).zero_();
  rest[1].slice(1, 0, 65).slice(2, 0, 33).zero_();
  EXPECT_EQ(rest.abs().max().item<float>(), 0.0f);
  EXPECT_EQ(CollateImages({at::rand({3, 64, 32})}, 32).sizes(), (at::IntArrayRef{1, 3, 64, 32}));
  EXPECT_EQ(CollateImages({at::rand({3, 5, 7})}, 1).sizes(), (at::IntArrayRef{1, 3, 5, 7}));
}

TEST(CollateImagesTest, RejectsBadImages) {
  EXPECT_THROW(CollateImages({}, 32), c10::Error);
  EXPECT_THROW(CollateImages({at::rand({3, 8, 8})}, 0), c10::Error);
  EXPECT_THROW(CollateImages({at::rand({1, 8, 8})}, 32), c10::Error);
  EXPECT_THROW(CollateImages({at::rand({3, 0, 8})}, 32), c10::Error);
  EXPECT_THROW(CollateImages({at::zeros({3, 8, 8}, at::kByte)}, 32), c10::Error);
  EXPECT_THROW(CollateImages({at::rand({3, 8, 8}), at::rand({3, 8, 8}, at::kDouble)}, 32),
               c10::Error);
  try {
    CollateImages({at::rand({3, 8, 8}), at::rand({8, 8})}, 32);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("image 1 must be a non-empty (3, h, w) tensor"),
              std::string::npos)
        << e.what();
  }
}

TEST(CheckDenseMetasTest, NamesTheImageAndField) {
  const at::Tensor batch = at::zeros({2, 3, 64, 96});
  std::vector<DenseImageMeta> metas = {IdentityMeta(64, 96), IdentityMeta(50, 70)};
  EXPECT_NO_THROW(CheckDenseMetas(batch, metas, "Test"));
  metas[1].width = 97;
  try {
    CheckDenseMetas(batch, metas, "Test");
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("Test: image 1 has height x width 50x97"),
              std::string::npos)
        << e.what();
  }
  metas[1] = IdentityMeta(50, 70);
  metas[1].scale_x = 0;
  EXPECT_THROW(CheckDenseMetas(batch, metas, "Test"), c10::Error);
  metas[1] = IdentityMeta(50, 70);
  metas[1].original_height = 0;
  EXPECT_THROW(CheckDenseMetas(batch, metas, "Test"), c10::Error);
  EXPECT_THROW(CheckDenseMetas(batch, {metas[0]}, "Test"), c10::Error);
  EXPECT_THROW(CheckDenseMetas(at::zeros({2, 1, 64, 96}), metas, "Test"), c10::Error);
}

TEST(FoldedConvTest, EqualsConvolutionBatchNormAndRelu) {
  ConvModule m(16, 24, 3, 1, /*with_bn=*/true, /*relu=*/true);
  InitRandomWeights(m, 3);
  EXPECT_FALSE(m.conv->bias.defined());  // mmcv: no conv bias in front of a norm
  at::manual_seed(3);
  const at::Tensor x = at::randn({2, 16, 9, 11});
  at::InferenceMode guard;
  at::Tensor expected = at::conv2d(x, m.conv->weight, {}, 1, 1);
  expected = at::batch_norm(expected, m.bn->weight, m.bn->bias, m.bn->running_mean,
                            m.bn->running_var, false, 0.0, 1e-5, false);
  expected = at::relu(expected);
  const at::Tensor got = FoldedConv(m, at::kCPU, at::kFloat).Run(x);
  EXPECT_TRUE(at::allclose(got, expected, 1e-4, 1e-5)) << (got - expected).abs().max();
  // Channels-last input stays channels-last.
  const at::Tensor cl =
      FoldedConv(m, at::kCPU, at::kFloat).Run(x.contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(cl.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(at::allclose(cl, expected, 1e-4, 1e-5));
  // Without BN the module keeps its conv bias and no activation.
  ConvModule plain(16, 8, 1, 0, false, false);
  InitRandomWeights(plain, 4);
  const at::Tensor y = at::conv2d(x, plain.conv->weight, plain.conv->bias);
  EXPECT_TRUE(at::allclose(FoldedConv(plain, at::kCPU, at::kFloat).Run(x), y, 1e-5, 1e-6));
  EXPECT_LT(y.min().item<float>(), 0.0f);
}

TEST(ConvTranspose2x2Test, EqualsTheDeconvolution) {
  at::manual_seed(5);
  at::InferenceMode guard;
  const at::Tensor w = at::randn({32, 24, 2, 2}) * 0.1, b = at::randn({24});
  for (const auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
    const at::Tensor x = at::randn({3, 32, 7, 5}).contiguous(format);
    const at::Tensor expected = at::conv_transpose2d(x, w, b, {2, 2});
    const at::Tensor got = ConvTranspose2x2(x, w, b);
    ASSERT_EQ(got.sizes(), (at::IntArrayRef{3, 24, 14, 10}));
    EXPECT_TRUE(at::allclose(got, expected, 1e-5, 1e-5)) << (got - expected).abs().max();
  }
  EXPECT_THROW(ConvTranspose2x2(at::randn({1, 8, 4, 4}), at::randn({8, 4, 3, 3}), at::randn({4})),
               c10::Error);
}

}  // namespace
}  // namespace iis::models
