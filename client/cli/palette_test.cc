#include "client/cli/palette.h"

#include <set>
#include <string>
#include <tuple>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::client {
namespace {

using ::testing::HasSubstr;

TEST(PaletteTest, EmbeddedAde20kPaletteIsComplete) {
  const auto& palette = Ade20kPalette();
  ASSERT_EQ(palette.size(), 150u);
  EXPECT_EQ(palette[0].name, "wall");
  EXPECT_EQ(palette[0].bgr, cv::Scalar(120, 120, 120));
  EXPECT_EQ(palette[2].name, "sky");
  EXPECT_EQ(palette[2].bgr, cv::Scalar(230, 230, 6));  // RGB 6,230,230 in BGR order
  EXPECT_EQ(palette[149].name, "flag");
  EXPECT_EQ(SegmentationColour(2), palette[2].bgr);
}

TEST(PaletteTest, ParserReportsTheBadLine) {
  auto ok = ParsePaletteTsv("# header\n0\ta\t1\t2\t3\n1\tb\t4\t5\t6\n");
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[1].bgr, cv::Scalar(6, 5, 4));
  for (const char* bad :
       {"0\ta\t1\t2\n", "1\ta\t1\t2\t3\n", "0\ta\t1\t2\t300\n", "0\t\t1\t2\t3\n"}) {
    auto parsed = ParsePaletteTsv(std::string("# h\n") + bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("palette line 2"));
  }
}

TEST(PaletteTest, InstanceColoursAreDistinct) {
  std::set<std::tuple<double, double, double>> seen;
  for (int i = 0; i < 20; ++i) {
    const cv::Scalar c = InstanceColour(i);
    seen.emplace(c[0], c[1], c[2]);
    if (i > 0) {
      const cv::Scalar p = InstanceColour(i - 1);
      EXPECT_GT(std::abs(c[0] - p[0]) + std::abs(c[1] - p[1]) + std::abs(c[2] - p[2]), 60) << i;
    }
  }
  EXPECT_EQ(seen.size(), 20u);
  // Beyond the palette, colours are generated and stable.
  EXPECT_EQ(SegmentationColour(500), SegmentationColour(500));
}

}  // namespace
}  // namespace iis::client
