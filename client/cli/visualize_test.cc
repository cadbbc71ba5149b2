#include "client/cli/visualize.h"

#include <vector>

#include "client/cli/palette.h"
#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"

namespace iis::client {
namespace {

namespace pb = ::internimage::serving::v1;

// Number of pixels whose colour differs from `image`'s.
int ChangedPixels(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  cv::Mat grey;
  cv::transform(diff, grey, cv::Matx13f(1, 1, 1));
  return cv::countNonZero(grey > 0);
}

// Returns true when some pixel of `image` in `roi` is close to `colour`.
bool HasColourNear(const cv::Mat& image, const cv::Scalar& colour, cv::Rect roi, double tol) {
  const cv::Mat part = image(roi);
  for (int y = 0; y < part.rows; ++y) {
    for (int x = 0; x < part.cols; ++x) {
      const cv::Vec3b& p = part.at<cv::Vec3b>(y, x);
      if (std::abs(p[0] - colour[0]) + std::abs(p[1] - colour[1]) + std::abs(p[2] - colour[2]) <=
          tol) {
        return true;
      }
    }
  }
  return false;
}

TEST(VisualizeTest, DetectionsDrawMasksAndBoxesInTheirColours) {
  const cv::Mat image(100, 160, CV_8UC3, cv::Scalar(40, 40, 40));
  pb::DetectResponse response;
  response.set_image_width(160);
  response.set_image_height(100);
  pb::Detection* d = response.add_detections();
  d->set_label("thing");
  d->set_score(0.9f);
  d->mutable_box()->set_x1(40);
  d->mutable_box()->set_y1(30);
  d->mutable_box()->set_x2(120);
  d->mutable_box()->set_y2(90);
  // Mask: columns 60..99 fully set (column-major runs over 100-pixel columns).
  pb::Rle* rle = d->mutable_mask();
  rle->set_height(100);
  rle->set_width(160);
  rle->add_counts(60 * 100);
  rle->add_counts(40 * 100);
  rle->add_counts(60 * 100);
  auto drawn = DrawDetections(image, response);
  ASSERT_TRUE(drawn.ok()) << drawn.status();
  ASSERT_EQ(drawn->size(), image.size());
  const cv::Scalar colour = InstanceColour(0);
  // The box outline carries the instance colour.
  EXPECT_TRUE(HasColourNear(*drawn, colour, cv::Rect(39, 55, 3, 5), 30));
  // Inside the mask the image is tinted halfway to the colour; outside it is untouched.
  const cv::Vec3b tinted = drawn->at<cv::Vec3b>(80, 80);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(tinted[c], (40 + colour[c]) / 2, 2) << c;
  EXPECT_EQ(drawn->at<cv::Vec3b>(95, 5), cv::Vec3b(40, 40, 40));
  EXPECT_GT(ChangedPixels(image, *drawn), 40 * 100 / 2);

  d->mutable_mask()->set_width(10);  // runs no longer match the size
  EXPECT_FALSE(DrawDetections(image, response).ok());
}

TEST(VisualizeTest, DetectionsResizeTheImageToTheAnswerSize) {
  const cv::Mat image(50, 80, CV_8UC3, cv::Scalar(0, 0, 0));
  pb::DetectResponse response;
  response.set_image_width(160);
  response.set_image_height(100);
  auto drawn = DrawDetections(image, response);
  ASSERT_TRUE(drawn.ok());
  EXPECT_EQ(drawn->cols, 160);
  EXPECT_EQ(drawn->rows, 100);
}

TEST(VisualizeTest, SegmentationBlendsPaletteColoursAndDrawsALegend) {
  const cv::Mat image(120, 200, CV_8UC3, cv::Scalar(0, 0, 0));
  cv::Mat labels(120, 200, CV_8UC1, cv::Scalar(2));  // sky
  labels(cv::Rect(100, 0, 100, 120)).setTo(4);       // tree on the right half
  std::vector<uchar> png;
  cv::imencode(".png", labels, png);
  pb::SegmentResponse response;
  response.set_width(200);
  response.set_height(120);
  response.set_label_png(std::string(png.begin(), png.end()));
  pb::ClassPixels* sky = response.add_class_pixels();
  sky->set_class_id(2);
  sky->set_label("sky");
  sky->set_pixels(12000);
  pb::ClassPixels* tree = response.add_class_pixels();
  tree->set_class_id(4);
  tree->set_label("tree");
  tree->set_pixels(12000);
  auto drawn = DrawSegmentation(image, response);
  ASSERT_TRUE(drawn.ok()) << drawn.status();
  ASSERT_EQ(drawn->size(), image.size());
  // Away from the legend (top left), pixels are 55% of their class colour over black.
  const cv::Vec3b right = drawn->at<cv::Vec3b>(110, 190);
  const cv::Scalar tree_colour = SegmentationColour(4);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(right[c], 0.55 * tree_colour[c], 2) << c;
  const cv::Vec3b left = drawn->at<cv::Vec3b>(110, 60);
  const cv::Scalar sky_colour = SegmentationColour(2);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(left[c], 0.55 * sky_colour[c], 2) << c;
  // The legend shows each class's swatch in its full colour.
  EXPECT_TRUE(HasColourNear(*drawn, sky_colour, cv::Rect(0, 0, 60, 40), 3));
  EXPECT_TRUE(HasColourNear(*drawn, tree_colour, cv::Rect(0, 0, 60, 40), 3));

  response.clear_label_png();
  EXPECT_FALSE(DrawSegmentation(image, response).ok());
  response.set_label_png("not a png");
  EXPECT_FALSE(DrawSegmentation(image, response).ok());
}

TEST(VisualizeTest, ClassificationDrawsTheLabelsOnTheImage) {
  const cv::Mat image(200, 300, CV_8UC3, cv::Scalar(200, 200, 200));
  pb::ClassifyResponse response;
  pb::ClassScore* c = response.add_classes();
  c->set_label("tabby");
  c->set_score(0.8f);
  const cv::Mat drawn = DrawClassification(image, response);
  ASSERT_EQ(drawn.size(), image.size());
  // Text and bar land in the top-left panel; the rest of the image is unchanged.
  EXPECT_GT(ChangedPixels(image(cv::Rect(0, 0, 150, 30)), drawn(cv::Rect(0, 0, 150, 30))), 200);
  EXPECT_EQ(ChangedPixels(image(cv::Rect(0, 100, 300, 100)), drawn(cv::Rect(0, 100, 300, 100))), 0);
}

}  // namespace
}  // namespace iis::client
