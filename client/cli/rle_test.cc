#include "client/cli/rle.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::client {
namespace {

using ::testing::HasSubstr;

// Encodes a row-major 0/1 mask the COCO way (column-major runs starting with 0s): the obvious,
// slow reference the decoder is checked against.
std::vector<uint32_t> EncodeReference(const std::vector<uint8_t>& mask, int height, int width) {
  std::vector<uint32_t> counts;
  uint8_t current = 0;
  uint32_t run = 0;
  for (int x = 0; x < width; ++x) {
    for (int y = 0; y < height; ++y) {
      const uint8_t v = mask[y * width + x];
      if (v != current) {
        counts.push_back(run);
        run = 0;
        current = v;
      }
      ++run;
    }
  }
  counts.push_back(run);
  return counts;
}

TEST(RleTest, DecodesColumnMajorRunsStartingWithZeros) {
  // 2 rows x 3 columns; column-major pixel order is (0,0) (1,0) (0,1) (1,1) (0,2) (1,2).
  // Runs: 1 zero, 2 ones, 3 zeros -> (1,0) and (0,1) are set.
  auto mask = DecodeRle(2, 3, std::vector<uint32_t>{1, 2, 3});
  ASSERT_TRUE(mask.ok()) << mask.status();
  ASSERT_EQ(mask->rows, 2);
  ASSERT_EQ(mask->cols, 3);
  EXPECT_EQ(mask->at<uint8_t>(0, 0), 0);
  EXPECT_EQ(mask->at<uint8_t>(1, 0), 1);
  EXPECT_EQ(mask->at<uint8_t>(0, 1), 1);
  EXPECT_EQ(mask->at<uint8_t>(1, 1), 0);
  EXPECT_EQ(mask->at<uint8_t>(0, 2), 0);
  EXPECT_EQ(mask->at<uint8_t>(1, 2), 0);
}

TEST(RleTest, LeadingZeroRunWhenTheFirstPixelIsSet) {
  auto mask = DecodeRle(1, 2, std::vector<uint32_t>{0, 2});
  ASSERT_TRUE(mask.ok());
  EXPECT_EQ(mask->at<uint8_t>(0, 0), 1);
  EXPECT_EQ(mask->at<uint8_t>(0, 1), 1);
  EXPECT_EQ(RleArea(std::vector<uint32_t>{0, 2}), 2);
}

TEST(RleTest, RoundTripsRandomMasks) {
  std::mt19937 rng(9);
  for (int trial = 0; trial < 50; ++trial) {
    const int height = 1 + static_cast<int>(rng() % 40);
    const int width = 1 + static_cast<int>(rng() % 40);
    std::vector<uint8_t> mask(height * width);
    int64_t area = 0;
    for (auto& v : mask) {
      v = rng() % 3 == 0;
      area += v;
    }
    const std::vector<uint32_t> counts = EncodeReference(mask, height, width);
    auto decoded = DecodeRle(height, width, counts);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        ASSERT_EQ(decoded->at<uint8_t>(y, x), mask[y * width + x]) << y << "," << x;
      }
    }
    EXPECT_EQ(RleArea(counts), area);
  }
}

TEST(RleTest, RejectsRunsThatDoNotCoverTheMask) {
  auto short_runs = DecodeRle(2, 3, std::vector<uint32_t>{1, 2});
  ASSERT_FALSE(short_runs.ok());
  EXPECT_THAT(std::string(short_runs.status().message()), HasSubstr("add up to 3 pixels"));
  EXPECT_FALSE(DecodeRle(2, 3, std::vector<uint32_t>{4, 4}).ok());
  EXPECT_FALSE(DecodeRle(0, 3, std::vector<uint32_t>{}).ok());
  EXPECT_FALSE(DecodeRle(-1, 3, std::vector<uint32_t>{3}).ok());
  EXPECT_FALSE(DecodeRle(1 << 15, 1 << 15, std::vector<uint32_t>{1u << 30}).ok());
}

}  // namespace
}  // namespace iis::client
