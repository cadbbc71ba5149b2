#include "server/runtime/postprocess.h"

#include <opencv2/imgcodecs.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::runtime {
namespace {

const std::vector<std::string> kNames = {"a", "b", "c", "d", "e", "f", "g"};

TEST(PostprocessTest, TopClassesBestFirstTiesByClassIdAndTheDefaultCount) {
  ClassificationOutput output{{0.1f, 0.3f, 0.3f, 0.05f, 0.05f, 0.1f, 0.1f}};
  ClassifyResult two = TopClasses(output, 2, kNames);
  ASSERT_EQ(two.classes.size(), 2u);
  EXPECT_EQ(two.classes[0].class_id, 1);
  EXPECT_EQ(two.classes[1].class_id, 2);
  EXPECT_EQ(two.classes[1].label, "c");
  EXPECT_EQ(TopClasses(output, 0, kNames).classes.size(), static_cast<size_t>(kDefaultTopK));
  EXPECT_EQ(TopClasses(output, 100, kNames).classes.size(), kNames.size());
  ClassificationOutput three{{0.2f, 0.5f, 0.3f}};
  EXPECT_EQ(TopClasses(three, 0, kNames).classes.size(), 3u);  // no more than there are
}

TEST(PostprocessTest, DetectionsAreFilteredByTheRequestsThresholdAndCount) {
  DetectionOutput output;
  output.image_width = 10;
  output.image_height = 8;
  for (float score : {0.9f, 0.5f, 0.3f, 0.3f}) {
    DetectionOutput::Object object{};
    object.x2 = 4;
    object.y2 = 4;
    object.score = score;
    object.label = 2;
    output.objects.push_back(object);
  }
  DetectOptions options;
  options.masks = false;
  EXPECT_EQ(ToDetectResult(output, options, kNames).objects.size(), 4u);
  options.score_threshold = 0.3f;  // strictly greater
  EXPECT_EQ(ToDetectResult(output, options, kNames).objects.size(), 2u);
  options.score_threshold = 0.0f;
  options.max_detections = 3;
  DetectResult result = ToDetectResult(output, options, kNames);
  ASSERT_EQ(result.objects.size(), 3u);
  EXPECT_EQ(result.objects[0].label, "c");
  EXPECT_EQ(result.image_width, 10);
  EXPECT_TRUE(result.objects[0].mask.counts.empty());
}

TEST(PostprocessTest, SegmentationCountsMostPixelsFirstAndEncodesTheMapAsPng) {
  SegmentationOutput output;
  output.width = 3;
  output.height = 2;
  output.labels = {4, 4, 1, 4, 1, 0};
  SegmentResult result = ToSegmentResult(output, /*counts_only=*/false, kNames);
  ASSERT_EQ(result.class_pixels.size(), 3u);
  EXPECT_EQ(result.class_pixels[0].class_id, 4);
  EXPECT_EQ(result.class_pixels[0].pixels, 3);
  EXPECT_EQ(result.class_pixels[0].label, "e");
  EXPECT_EQ(result.class_pixels[1].class_id, 1);
  const cv::Mat png = cv::imdecode(
      std::vector<uchar>(result.label_png.begin(), result.label_png.end()), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(png.type(), CV_8UC1);
  EXPECT_EQ(png.at<uchar>(1, 2), 0);
  EXPECT_EQ(png.at<uchar>(0, 2), 1);
  EXPECT_TRUE(ToSegmentResult(output, /*counts_only=*/true, kNames).label_png.empty());
}

}  // namespace
}  // namespace iis::runtime
