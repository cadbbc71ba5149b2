#include "client/cli/visualize.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "client/cli/palette.h"
#include "client/cli/rle.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace iis::client {
namespace {

namespace pb = ::internimage::serving::v1;

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

// Text size that stays readable on small and large images.
double FontScale(const cv::Mat& image) {
  return std::clamp(std::min(image.cols, image.rows) / 700.0, 0.4, 1.4);
}

int Thickness(const cv::Mat& image) {
  return std::max(1, static_cast<int>(std::lround(std::min(image.cols, image.rows) / 350.0)));
}

// Returns the input as an 8-bit BGR image of width x height.
cv::Mat Canvas(const cv::Mat& image, int width, int height) {
  cv::Mat canvas;
  if (width > 0 && height > 0 && (image.cols != width || image.rows != height)) {
    cv::resize(image, canvas, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
  } else {
    canvas = image.clone();
  }
  return canvas;
}

// Black or white, whichever reads better on `background`.
cv::Scalar TextColourOn(const cv::Scalar& background) {
  const double luma = 0.114 * background[0] + 0.587 * background[1] + 0.299 * background[2];
  return luma > 150 ? cv::Scalar(0, 0, 0) : cv::Scalar(255, 255, 255);
}

// Darkens the rectangle `box` (clipped to the image) so text on it stands out.
void ShadeBox(cv::Mat& image, cv::Rect box, double alpha) {
  box &= cv::Rect(0, 0, image.cols, image.rows);
  if (box.empty()) return;
  cv::Mat roi = image(box);
  cv::Mat dark(roi.size(), roi.type(), cv::Scalar::all(20));
  cv::addWeighted(roi, 1.0 - alpha, dark, alpha, 0.0, roi);
}

// A text label on a filled background.
struct Tag {
  std::string text;
  cv::Rect box;
  cv::Scalar colour;
};

// Returns the tag of `text` whose top-left corner is `corner`, moved inside the image.
Tag MakeTag(const cv::Mat& image, std::string text, cv::Point corner, const cv::Scalar& colour,
            double scale, int thickness) {
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, kFont, scale, thickness, &baseline);
  const int pad = std::max(2, size.height / 4);
  cv::Rect box(corner.x, corner.y, size.width + 2 * pad, size.height + baseline + 2 * pad);
  box.x = std::clamp(box.x, 0, std::max(0, image.cols - box.width));
  box.y = std::clamp(box.y, 0, std::max(0, image.rows - box.height));
  return Tag{std::move(text), box, colour};
}

void DrawTag(cv::Mat& image, const Tag& tag, double scale, int thickness) {
  int baseline = 0;
  const cv::Size size = cv::getTextSize(tag.text, kFont, scale, thickness, &baseline);
  const int pad = (tag.box.height - size.height - baseline) / 2;
  cv::rectangle(image, tag.box, tag.colour, cv::FILLED);
  cv::putText(image, tag.text, {tag.box.x + pad, tag.box.y + pad + size.height}, kFont, scale,
              TextColourOn(tag.colour), thickness, cv::LINE_AA);
}

}  // namespace

cv::Mat DrawClassification(const cv::Mat& image, const pb::ClassifyResponse& response) {
  cv::Mat canvas = image.clone();
  const double scale = FontScale(canvas);
  const int thickness = Thickness(canvas);
  int baseline = 0;
  const int line = cv::getTextSize("Ag", kFont, scale, thickness, &baseline).height * 2;
  const int bar_width = static_cast<int>(100 * scale);
  std::vector<std::string> rows;
  int text_width = 0;
  for (int i = 0; i < response.classes_size(); ++i) {
    const pb::ClassScore& c = response.classes(i);
    rows.push_back(absl::StrFormat(
        "%d. %s  %.1f%%", i + 1,
        c.label().empty() ? absl::StrCat("class ", c.class_id()) : c.label(), 100.0 * c.score()));
    text_width = std::max(text_width,
                          cv::getTextSize(rows.back(), kFont, scale, thickness, &baseline).width);
  }
  const int margin = line / 3;
  ShadeBox(canvas,
           cv::Rect(0, 0, text_width + bar_width + 3 * margin,
                    line * static_cast<int>(rows.size()) + margin),
           0.6);
  for (size_t i = 0; i < rows.size(); ++i) {
    const int y = line * static_cast<int>(i + 1) - line / 4;
    const cv::Scalar colour = InstanceColour(static_cast<int>(i));
    const int filled =
        static_cast<int>(bar_width * std::clamp(response.classes(i).score(), 0.f, 1.f));
    const cv::Rect bar(margin, y - line / 2, std::max(1, filled), line / 3);
    cv::rectangle(canvas, bar, colour, cv::FILLED);
    cv::putText(canvas, rows[i], {2 * margin + bar_width, y}, kFont, scale,
                cv::Scalar(255, 255, 255), thickness, cv::LINE_AA);
  }
  return canvas;
}

absl::StatusOr<cv::Mat> DrawDetections(const cv::Mat& image, const pb::DetectResponse& response) {
  cv::Mat canvas = Canvas(image, response.image_width(), response.image_height());
  const double scale = FontScale(canvas);
  const int thickness = Thickness(canvas);
  // Masks first (worst first, so the best instance ends on top), then boxes and tags.
  for (int i = response.detections_size() - 1; i >= 0; --i) {
    const pb::Detection& detection = response.detections(i);
    if (!detection.has_mask() || detection.mask().counts().empty()) continue;
    const pb::Rle& rle = detection.mask();
    auto mask = DecodeRle(rle.height(), rle.width(),
                          absl::MakeConstSpan(rle.counts().data(), rle.counts().size()));
    if (!mask.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("detection ", i + 1, ": ", mask.status().message()));
    }
    if (mask->size() != canvas.size()) {
      cv::resize(*mask, *mask, canvas.size(), 0, 0, cv::INTER_NEAREST);
    }
    const cv::Scalar colour = InstanceColour(i);
    cv::Mat tinted(canvas.size(), canvas.type(), colour);
    cv::Mat blended;
    cv::addWeighted(canvas, 0.5, tinted, 0.5, 0.0, blended);
    blended.copyTo(canvas, *mask);
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(*mask, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
    cv::drawContours(canvas, contours, -1, colour, thickness, cv::LINE_AA);
  }
  auto top_left_of = [](const pb::BoundingBox& box) {
    return cv::Point(static_cast<int>(std::floor(box.x1())),
                     static_cast<int>(std::floor(box.y1())));
  };
  for (int i = response.detections_size() - 1; i >= 0; --i) {
    const pb::BoundingBox& box = response.detections(i).box();
    const cv::Point bottom_right(static_cast<int>(std::ceil(box.x2())) - 1,
                                 static_cast<int>(std::ceil(box.y2())) - 1);
    cv::rectangle(canvas, top_left_of(box), bottom_right, InstanceColour(i), thickness + 1,
                  cv::LINE_AA);
  }
  // Tags are placed best first, each above its box when there is room (else just inside it)
  // and moved down past the tags already placed, so none hides another.
  std::vector<Tag> tags;
  for (int i = 0; i < response.detections_size(); ++i) {
    const pb::Detection& detection = response.detections(i);
    const cv::Scalar colour = InstanceColour(i);
    const cv::Point top_left = top_left_of(detection.box());
    const std::string label =
        absl::StrFormat("%s %.2f",
                        detection.label().empty() ? absl::StrCat("class ", detection.class_id())
                                                  : detection.label(),
                        detection.score());
    Tag tag = MakeTag(canvas, label, top_left, colour, scale, thickness);
    if (top_left.y - tag.box.height >= 0) tag.box.y = top_left.y - tag.box.height;
    for (bool moved = true; moved && tag.box.br().y + tag.box.height <= canvas.rows;) {
      moved = false;
      for (const Tag& placed : tags) {
        if ((placed.box & tag.box).area() > 0) {
          tag.box.y = placed.box.br().y;
          moved = true;
        }
      }
    }
    tags.push_back(std::move(tag));
  }
  for (const Tag& tag : tags) DrawTag(canvas, tag, scale, thickness);
  return canvas;
}

absl::StatusOr<cv::Mat> DrawSegmentation(const cv::Mat& image,
                                         const pb::SegmentResponse& response) {
  if (response.label_png().empty()) {
    return absl::InvalidArgumentError("segmentation: the answer has no label map (counts_only)");
  }
  const std::string& png = response.label_png();
  cv::Mat encoded(1, static_cast<int>(png.size()), CV_8UC1, const_cast<char*>(png.data()));
  const cv::Mat labels = cv::imdecode(encoded, cv::IMREAD_UNCHANGED);
  if (labels.empty() || labels.channels() != 1 ||
      (labels.depth() != CV_8U && labels.depth() != CV_16U) || labels.cols != response.width() ||
      labels.rows != response.height()) {
    return absl::InvalidArgumentError(
        absl::StrCat("segmentation: expected a one-channel 8/16-bit PNG label map of ",
                     response.width(), "x", response.height(), ", got ",
                     labels.empty() ? std::string("bytes that do not decode")
                                    : absl::StrCat(labels.cols, "x", labels.rows, " with ",
                                                   labels.channels(), " channel(s)")));
  }
  cv::Mat labels32;
  labels.convertTo(labels32, CV_32S);
  cv::Mat colours(labels.size(), CV_8UC3);
  // Colours by class, looked up once per distinct class.
  std::vector<cv::Vec3b> lut;
  for (int y = 0; y < labels32.rows; ++y) {
    const int* in = labels32.ptr<int>(y);
    auto* out = colours.ptr<cv::Vec3b>(y);
    for (int x = 0; x < labels32.cols; ++x) {
      const int c = in[x];
      while (static_cast<int>(lut.size()) <= c) {
        const cv::Scalar s = SegmentationColour(static_cast<int>(lut.size()));
        lut.emplace_back(static_cast<uchar>(s[0]), static_cast<uchar>(s[1]),
                         static_cast<uchar>(s[2]));
      }
      out[x] = lut[c];
    }
  }
  cv::Mat canvas = Canvas(image, response.width(), response.height());
  cv::addWeighted(canvas, 0.45, colours, 0.55, 0.0, canvas);

  // Legend: a swatch, the class name and its share of the pixels, most pixels first.
  const double scale = FontScale(canvas);
  const int thickness = Thickness(canvas);
  int baseline = 0;
  const int line = cv::getTextSize("Ag", kFont, scale, thickness, &baseline).height * 2;
  const int64_t total = static_cast<int64_t>(canvas.cols) * canvas.rows;
  const int rows_that_fit = std::max(1, canvas.rows / line - 1);
  const int classes = response.class_pixels_size();
  const int shown = classes <= rows_that_fit ? classes : rows_that_fit - 1;
  std::vector<std::string> texts;
  int text_width = 0;
  for (int i = 0; i < shown; ++i) {
    const pb::ClassPixels& c = response.class_pixels(i);
    texts.push_back(absl::StrFormat(
        "%s %.1f%%", c.label().empty() ? absl::StrCat("class ", c.class_id()) : c.label(),
        100.0 * c.pixels() / std::max<int64_t>(1, total)));
    text_width = std::max(text_width,
                          cv::getTextSize(texts.back(), kFont, scale, thickness, &baseline).width);
  }
  if (shown < classes) {
    texts.push_back(absl::StrCat("+", classes - shown, " more"));
    text_width = std::max(text_width,
                          cv::getTextSize(texts.back(), kFont, scale, thickness, &baseline).width);
  }
  const int margin = line / 3;
  const int swatch = line * 2 / 3;
  ShadeBox(canvas,
           cv::Rect(0, 0, text_width + swatch + 3 * margin,
                    line * static_cast<int>(texts.size()) + margin),
           0.65);
  for (size_t i = 0; i < texts.size(); ++i) {
    const int y = line * static_cast<int>(i + 1) - line / 4;
    if (static_cast<int>(i) < shown) {
      const cv::Rect box(margin, y - swatch + swatch / 6, swatch, swatch);
      cv::rectangle(canvas, box, SegmentationColour(response.class_pixels(i).class_id()),
                    cv::FILLED);
      cv::rectangle(canvas, box, cv::Scalar(255, 255, 255), 1);
    }
    cv::putText(canvas, texts[i], {2 * margin + swatch, y}, kFont, scale, cv::Scalar(255, 255, 255),
                thickness, cv::LINE_AA);
  }
  return canvas;
}

}  // namespace iis::client
