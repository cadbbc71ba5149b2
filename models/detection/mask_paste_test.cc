#include "models/detection/mask_paste.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace iis::models::detection {
namespace {

// mmdetection's _do_paste_mask for one box (CPU path, skip_empty) written with ATen, thresholded.
// Returns the full image_height x image_width uint8 mask.
at::Tensor PasteReference(const at::Tensor& probs, const std::array<float, 4>& box, int64_t img_h,
                          int64_t img_w) {
  const at::Tensor b = at::tensor({box[0], box[1], box[2], box[3]}).view({1, 4});
  const int64_t x0_int = at::clamp(at::floor(b[0][0]) - 1, 0).item<float>();
  const int64_t y0_int = at::clamp(at::floor(b[0][1]) - 1, 0).item<float>();
  const int64_t x1_int = at::clamp(at::ceil(b[0][2]) + 1, c10::nullopt, img_w).item<float>();
  const int64_t y1_int = at::clamp(at::ceil(b[0][3]) + 1, c10::nullopt, img_h).item<float>();
  at::Tensor full = at::zeros({img_h, img_w}, at::kByte);
  if (x1_int <= x0_int || y1_int <= y0_int) return full;
  const at::Tensor x0 = b.slice(1, 0, 1), y0 = b.slice(1, 1, 2), x1 = b.slice(1, 2, 3),
                   y1 = b.slice(1, 3, 4);
  at::Tensor img_y = at::arange(y0_int, y1_int).to(at::kFloat) + 0.5;
  at::Tensor img_x = at::arange(x0_int, x1_int).to(at::kFloat) + 0.5;
  img_y = (img_y - y0) / (y1 - y0) * 2 - 1;
  img_x = (img_x - x0) / (x1 - x0) * 2 - 1;
  img_x.masked_fill_(at::isinf(img_x), 0);
  img_y.masked_fill_(at::isinf(img_y), 0);
  const int64_t h = img_y.size(1), w = img_x.size(1);
  const at::Tensor gx = img_x.unsqueeze(1).expand({1, h, w});
  const at::Tensor gy = img_y.unsqueeze(2).expand({1, h, w});
  const at::Tensor grid = at::stack({gx, gy}, 3);
  const at::Tensor sampled =
      at::grid_sampler(probs.view({1, 1, probs.size(0), probs.size(1)}), grid,
                       /*bilinear*/ 0, /*zeros*/ 0, /*align_corners=*/false);
  full.slice(0, y0_int, y1_int)
      .slice(1, x0_int, x1_int)
      .copy_((sampled[0][0] >= 0.5f).to(at::kByte));
  return full;
}

at::Tensor WindowToFull(const MaskWindow& m, int64_t img_h, int64_t img_w) {
  at::Tensor full = at::zeros({img_h, img_w}, at::kByte);
  auto acc = full.accessor<uint8_t, 2>();
  for (int64_t y = 0; y < img_h; ++y) {
    for (int64_t x = 0; x < img_w; ++x) acc[y][x] = m.At(static_cast<int>(x), static_cast<int>(y));
  }
  return full;
}

// Run lengths of the column-major flattening of `full`, starting with zeros.
std::vector<uint64_t> NaiveRle(const at::Tensor& full) {
  const at::Tensor flat = full.t().contiguous().view({-1});
  std::vector<uint64_t> counts;
  uint8_t cur = 0;
  uint64_t run = 0;
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const uint8_t v = flat[i].item<uint8_t>();
    if (v != cur) {
      counts.push_back(run);
      run = 0;
      cur = v;
    }
    ++run;
  }
  counts.push_back(run);
  return counts;
}

TEST(MaskPasteTest, EqualsGridSampleOnRandomBoxes) {
  at::manual_seed(21);
  const int64_t img_h = 61, img_w = 83;
  int total_on = 0;
  for (int trial = 0; trial < 200; ++trial) {
    // Probabilities on a coarse lattice make many interpolated values land exactly on 0.5.
    at::Tensor probs =
        (trial % 2 == 0) ? at::randint(0, 5, {28, 28}).to(at::kFloat) * 0.25 : at::rand({28, 28});
    probs = probs.contiguous();
    const at::Tensor r = at::rand({4});
    float x1 = r[0].item<float>() * 100 - 10, y1 = r[1].item<float>() * 80 - 10;
    float x2 = x1 + r[2].item<float>() * 60, y2 = y1 + r[3].item<float>() * 50;
    if (trial == 7) x2 = x1;  // zero width: infinite grid coordinates
    if (trial == 9) y2 = y1 + 1e-3f;
    const std::array<float, 4> box = {x1, y1, x2, y2};
    const MaskWindow m = PasteMask(probs.data_ptr<float>(), 28, box, img_h, img_w);
    const at::Tensor expected = PasteReference(probs, box, img_h, img_w);
    const at::Tensor got = WindowToFull(m, img_h, img_w);
    ASSERT_TRUE(at::equal(got, expected))
        << "trial " << trial << " box " << x1 << "," << y1 << "," << x2 << "," << y2;
    total_on += got.sum().item<int>();
    EXPECT_EQ(EncodeRle(m, img_h, img_w), NaiveRle(expected)) << "trial " << trial;
  }
  EXPECT_GT(total_on, 1000);  // the comparison is not vacuous
}

TEST(MaskPasteTest, WindowIsTheBoxNeighbourhood) {
  std::vector<float> ones(28 * 28, 1.0f);
  const MaskWindow m = PasteMask(ones.data(), 28, {10.5f, 20.2f, 30.0f, 40.7f}, 100, 200);
  EXPECT_EQ(m.x0, 9);            // floor(10.5) - 1
  EXPECT_EQ(m.y0, 19);           // floor(20.2) - 1
  EXPECT_EQ(m.width, 31 - 9);    // ceil(30) + 1
  EXPECT_EQ(m.height, 42 - 19);  // ceil(40.7) + 1
  // A box past the image is clipped to it; one entirely outside gives an empty mask.
  const MaskWindow edge = PasteMask(ones.data(), 28, {-5.0f, -5.0f, 500.0f, 500.0f}, 100, 200);
  EXPECT_EQ(edge.x0, 0);
  EXPECT_EQ(edge.y0, 0);
  EXPECT_EQ(edge.width, 200);
  EXPECT_EQ(edge.height, 100);
  const MaskWindow outside = PasteMask(ones.data(), 28, {300.0f, 10.0f, 400.0f, 20.0f}, 100, 200);
  EXPECT_EQ(outside.width, 0);
  EXPECT_EQ(EncodeRle(outside, 100, 200), std::vector<uint64_t>{20000});
}

TEST(MaskPasteTest, RleOfAFullAndAnEmptyImage) {
  std::vector<float> ones(4, 1.0f), zeros(4, 0.0f);
  // 2x2 all-ones mask over the whole 3x2 image: one empty zero run, then 6 ones.
  const MaskWindow full = PasteMask(ones.data(), 2, {0.0f, 0.0f, 2.0f, 3.0f}, 3, 2);
  EXPECT_EQ(EncodeRle(full, 3, 2), (std::vector<uint64_t>{0, 6}));
  const MaskWindow none = PasteMask(zeros.data(), 2, {0.0f, 0.0f, 2.0f, 3.0f}, 3, 2);
  EXPECT_EQ(EncodeRle(none, 3, 2), std::vector<uint64_t>{6});
}

TEST(MaskPasteTest, MmdetPasteBoxRoundTripsThroughTheScaleFactor) {
  const std::array<float, 4> box = {12.345f, 67.891f, 234.5f, 456.7f};
  const float sx = 1.6671875f, sy = 1.6666666f;
  const std::array<float, 4> p = MmdetPasteBox(box, sx, sy);
  for (int i = 0; i < 4; ++i) {
    const float s = (i % 2 == 0) ? sx : sy;
    EXPECT_EQ(p[i], (box[i] * s) / s);
    EXPECT_NEAR(p[i], box[i], 1e-4f);
  }
}

TEST(MaskPasteTest, RejectsBadArguments) {
  std::vector<float> probs(28 * 28, 0.5f);
  EXPECT_THROW(PasteMask(nullptr, 28, {0, 0, 1, 1}, 10, 10), std::invalid_argument);
  EXPECT_THROW(PasteMask(probs.data(), 0, {0, 0, 1, 1}, 10, 10), std::invalid_argument);
  EXPECT_THROW(PasteMask(probs.data(), 28, {0, 0, 1, 1}, 0, 10), std::invalid_argument);
  EXPECT_THROW(PasteMask(probs.data(), 28, {0, 0, NAN, 1}, 10, 10), std::invalid_argument);
  MaskWindow bad;
  bad.x0 = 5;
  bad.width = 10;
  bad.height = 1;
  bad.bits.assign(10, 1);
  EXPECT_THROW(EncodeRle(bad, 10, 10), std::invalid_argument);
  bad.x0 = 0;
  bad.bits.resize(3);
  EXPECT_THROW(EncodeRle(bad, 10, 10), std::invalid_argument);
}

}  // namespace
}  // namespace iis::models::detection
