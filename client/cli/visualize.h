// The pictures internimage-client --visualize writes: answers drawn over the input image with
// OpenCV. Every function returns a new 8-bit BGR image of the answer's image size (the input is
// resized first if it differs, e.g. for a FLOAT32_CHW input answered in tensor coordinates).
#pragma once

#include "absl/status/statusor.h"
#include "internimage/serving/v1/vision.pb.h"
#include "opencv2/core/mat.hpp"

namespace iis::client {

// Draws the top-k labels with their scores (text and bars) in a panel at the top left.
cv::Mat DrawClassification(const cv::Mat& image,
                           const ::internimage::serving::v1::ClassifyResponse& response);

// Draws each detection: its mask translucent with an outline, its box and a "label score" tag,
// each instance in its own colour (InstanceColour, best first). Fails with INVALID_ARGUMENT
// when a mask does not decode (RleDecode's errors, naming the detection).
absl::StatusOr<cv::Mat> DrawDetections(const cv::Mat& image,
                                       const ::internimage::serving::v1::DetectResponse& response);

// Blends the colour-coded class map (ADE20K palette) over the image and draws a legend of the
// classes present, most pixels first. Fails with INVALID_ARGUMENT when the answer has no label
// map (counts_only) or it does not decode to the answer's size.
absl::StatusOr<cv::Mat> DrawSegmentation(
    const cv::Mat& image, const ::internimage::serving::v1::SegmentResponse& response);

}  // namespace iis::client
