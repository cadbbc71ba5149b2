#include "models/preprocess/preprocess.h"

#include <gtest/gtest.h>

#include "tests/testing/paths.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "models/npy.h"
#include "models/preprocess/pil_resample.h"

namespace iis::models::preprocess {
namespace {

using testing_paths::ReadFileBytes;

// Runs testdata/make_reference.py once: PIL/torchvision and cv2/numpy references for real images.
class PreprocessReferenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/iis_preprocess_ref");
    const std::string cmd = "/usr/bin/python3 " + testing_paths::SourceDir() +
                            "/models/preprocess/testdata/make_reference.py " + *dir_ + " > " +
                            *dir_ + ".log 2>&1";
    ok_ = std::system(cmd.c_str()) == 0;
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override {
    if (!ok_)
      GTEST_SKIP() << "reference script failed (needs /usr/bin/python3 with torch, "
                      "torchvision, PIL, cv2); see "
                   << *dir_ << ".log";
  }

  static std::vector<std::string> Names() {
    std::vector<std::string> names;
    std::ifstream in(*dir_ + "/index.txt");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) names.push_back(line);
    }
    return names;
  }

  static void ExpectEqualToReference(const NormalizedImage& got, const std::string& npy,
                                     double tolerance) {
    const NpyArray ref = ReadNpy(npy);
    ASSERT_EQ(ref.dtype, "<f4");
    ASSERT_EQ(ref.shape.size(), 3u);
    ASSERT_EQ(ref.shape[0], 3);
    ASSERT_EQ(ref.shape[1], got.height) << npy;
    ASSERT_EQ(ref.shape[2], got.width) << npy;
    const auto* r = reinterpret_cast<const float*>(ref.data.data());
    double worst = 0;
    for (size_t i = 0; i < got.chw.size(); ++i)
      worst = std::max(worst, std::fabs(double(got.chw[i]) - r[i]));
    EXPECT_LE(worst, tolerance) << npy;
  }

  static std::string* dir_;
  static bool ok_;
};
std::string* PreprocessReferenceTest::dir_ = nullptr;
bool PreprocessReferenceTest::ok_ = false;

TEST_F(PreprocessReferenceTest, ClassificationEqualsTorchvisionOnPil) {
  const auto names = Names();
  ASSERT_GE(names.size(), 10u);
  PreprocessSpec spec;  // classification, 224
  for (const auto& name : names) {
    const cv::Mat img =
        DecodeImage(ReadFileBytes(*dir_ + "/" + name), /*apply_exif_orientation=*/false);
    // Bit-exact: PIL's fixed-point bicubic, the same crop rounding, float32 ToTensor/Normalize.
    ExpectEqualToReference(Preprocess(img, false, spec), *dir_ + "/" + name + ".cls.npy", 0.0);
  }
}

TEST_F(PreprocessReferenceTest, DetectionEqualsMmdetPipeline) {
  PreprocessSpec spec;
  spec.kind = PreprocessKind::kDetection;
  for (const auto& name : Names()) {
    const NormalizedImage got =
        Preprocess(DecodeImage(ReadFileBytes(*dir_ + "/" + name), true), false, spec);
    ExpectEqualToReference(got, *dir_ + "/" + name + ".det.npy", 0.0);
    std::ifstream meta(*dir_ + "/" + name + ".det.txt");
    int w = 0, h = 0;
    float sx = 0, sy = 0;
    meta >> w >> h >> sx >> sy;
    EXPECT_EQ(got.width, w);
    EXPECT_EQ(got.height, h);
    EXPECT_EQ(got.scale_x, sx) << name;
    EXPECT_EQ(got.scale_y, sy) << name;
  }
}

TEST_F(PreprocessReferenceTest, SegmentationEqualsMmsegPipeline) {
  PreprocessSpec spec;
  spec.kind = PreprocessKind::kSegmentation;
  spec.scale_long = 2048;
  spec.scale_short = 512;
  for (const auto& name : Names()) {
    const NormalizedImage got =
        Preprocess(DecodeImage(ReadFileBytes(*dir_ + "/" + name), true), false, spec);
    EXPECT_EQ(got.width % 32, 0);
    EXPECT_EQ(got.height % 32, 0);
    ExpectEqualToReference(got, *dir_ + "/" + name + ".seg.npy", 0.0);
  }
}

TEST(PreprocessTest, RescaleSizesMatchTheDocumentedExamples) {
  EXPECT_EQ(RescaleSize(640, 480, 1333, 800), std::make_pair(1067, 800));
  EXPECT_EQ(RescaleSize(1920, 1080, 1333, 800), std::make_pair(1333, 750));
  EXPECT_EQ(RescaleSize(640, 480, 2048, 512), std::make_pair(683, 512));
  EXPECT_EQ(RescaleSize(1920, 1080, 2048, 512), std::make_pair(910, 512));
  EXPECT_EQ(ShorterSideSize(500, 375, 224), std::make_pair(298, 224));
  EXPECT_EQ(ShorterSideSize(375, 500, 224), std::make_pair(224, 298));
}

TEST(PreprocessTest, CorruptAndEmptyImagesAreRejected) {
  EXPECT_THROW(DecodeImage("", true), PreprocessError);
  EXPECT_THROW(DecodeImage("definitely not an image", true), PreprocessError);
  std::vector<uchar> png;
  cv::imencode(".png", cv::Mat(20, 30, CV_8UC3, cv::Scalar(1, 2, 3)), png);
  const std::string truncated(reinterpret_cast<const char*>(png.data()), png.size() / 2);
  EXPECT_THROW(DecodeImage(truncated, true), PreprocessError);
  EXPECT_THROW(Preprocess(cv::Mat(), false, PreprocessSpec{}), PreprocessError);
  EXPECT_THROW(Preprocess(cv::Mat(10, 10, CV_8UC1), false, PreprocessSpec{}), PreprocessError);
}

TEST(PilResizeTest, SameSizeIsIdentityAndWindowsAreConsistent) {
  cv::Mat img(37, 53, CV_8UC3);
  cv::randu(img, 0, 255);
  ImageView8 v{img.data, img.cols, img.rows, 3, static_cast<int64_t>(img.step[0])};
  const auto same = PilResize(v, 53, 37, ResizeWindow{0, 0, 53, 37});
  EXPECT_TRUE(std::equal(same.begin(), same.end(), img.data));
  // A window of the resized image equals the same pixels of the full resize.
  const auto full = PilResize(v, 90, 70, ResizeWindow{0, 0, 90, 70});
  const auto part = PilResize(v, 90, 70, ResizeWindow{11, 7, 40, 30});
  for (int y = 0; y < 30; ++y) {
    for (int x = 0; x < 40 * 3; ++x) {
      ASSERT_EQ(part[y * 120 + x], full[(y + 7) * 270 + 33 + x]) << y << "," << x;
    }
  }
  EXPECT_THROW(PilResize(v, 90, 70, ResizeWindow{60, 0, 40, 10}), std::invalid_argument);
}

}  // namespace
}  // namespace iis::models::preprocess
