#include "client/common/images.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "common/file_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"

namespace iis::client {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ImagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("images_test_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "sub");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Touch(const fs::path& path, const std::string& content = "x") {
    std::ofstream(path, std::ios::binary) << content;
  }
  fs::path dir_;
};

TEST_F(ImagesTest, ExpandsDirectoriesRecursivelyAndSorted) {
  Touch(dir_ / "b.JPG");
  Touch(dir_ / "a.png");
  Touch(dir_ / "notes.txt");
  Touch(dir_ / "sub" / "c.webp");
  const std::string file = (dir_ / "notes.txt").string();
  auto files = ExpandImagePaths({dir_.string(), file});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_THAT(*files, ElementsAre((dir_ / "a.png").string(), (dir_ / "b.JPG").string(),
                                  (dir_ / "sub" / "c.webp").string(), file));
}

TEST_F(ImagesTest, ReportsMissingPathsAndEmptyDirectories) {
  auto missing = ExpandImagePaths({(dir_ / "nope.jpg").string()});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("nope.jpg"));
  auto empty = ExpandImagePaths({(dir_ / "sub").string()});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  auto read = common::ReadFile("--ca-cert", (dir_ / "none.pem").string());
  EXPECT_THAT(std::string(read.status().message()), HasSubstr("--ca-cert: file"));
}

TEST_F(ImagesTest, SyntheticJpegDecodesToTheRequestedSize) {
  const std::string jpeg = MakeSyntheticJpeg(320, 200, 5);
  auto image = DecodeImage("synthetic", jpeg);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->cols, 320);
  EXPECT_EQ(image->rows, 200);
  EXPECT_EQ(MakeSyntheticJpeg(320, 200, 5), jpeg);  // deterministic
  EXPECT_NE(MakeSyntheticJpeg(320, 200, 6), jpeg);
  // Noise makes it photo-like: well over a flat image's few kilobytes.
  EXPECT_GT(jpeg.size(), 20000u);
}

TEST_F(ImagesTest, RawImageIsRgbHwc) {
  cv::Mat bgr(2, 3, CV_8UC3, cv::Scalar(10, 20, 30));  // B=10, G=20, R=30
  bgr.at<cv::Vec3b>(1, 2) = cv::Vec3b(1, 2, 3);
  ::internimage::serving::v1::Image image;
  SetRawImage(bgr, &image);
  const auto& tensor = image.tensor();
  EXPECT_EQ(tensor.format(), ::internimage::serving::v1::RawTensor::UINT8_HWC_RGB);
  EXPECT_THAT(tensor.shape(), ElementsAre(2, 3, 3));
  ASSERT_EQ(tensor.data().size(), 18u);
  EXPECT_EQ(tensor.data()[0], 30);  // R first
  EXPECT_EQ(tensor.data()[2], 10);
  EXPECT_EQ(tensor.data()[15], 3);  // pixel (1, 2): R=3, G=2, B=1
  EXPECT_EQ(tensor.data()[17], 1);
}

TEST_F(ImagesTest, NormalizedTensorIsFloatChwWithImageNetStatistics) {
  const cv::Mat bgr(40, 60, CV_8UC3, cv::Scalar(0, 128, 255));  // B=0, G=128, R=255
  ::internimage::serving::v1::Image image;
  SetNormalizedTensor(bgr, 8, &image);
  const auto& tensor = image.tensor();
  EXPECT_EQ(tensor.format(), ::internimage::serving::v1::RawTensor::FLOAT32_CHW);
  EXPECT_THAT(tensor.shape(), ElementsAre(3, 8, 8));
  ASSERT_EQ(tensor.data().size(), 3u * 8 * 8 * sizeof(float));
  const auto* v = reinterpret_cast<const float*>(tensor.data().data());
  EXPECT_NEAR(v[0], (1.0f - 0.485f) / 0.229f, 1e-5);            // R plane first
  EXPECT_NEAR(v[64], (128 / 255.0f - 0.456f) / 0.224f, 1e-5);   // G
  EXPECT_NEAR(v[2 * 64 + 63], (0.0f - 0.406f) / 0.225f, 1e-5);  // B, last pixel
}

TEST_F(ImagesTest, RejectsUndecodableBytesAndBadSizes) {
  auto bad = DecodeImage("x.jpg", "not an image");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("x.jpg"));
  EXPECT_EQ(ParseImageSize("--synthetic", "640x480")->width, 640);
  EXPECT_EQ(ParseImageSize("--synthetic", "640x480")->height, 480);
  for (const char* text : {"640", "0x10", "10x", "x10", "640x480x3", "99999x10"}) {
    auto size = ParseImageSize("--synthetic", text);
    ASSERT_FALSE(size.ok()) << text;
    EXPECT_THAT(std::string(size.status().message()), HasSubstr("--synthetic"));
  }
}

}  // namespace
}  // namespace iis::client
