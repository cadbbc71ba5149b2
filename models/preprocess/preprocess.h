// Image decoding and the official test-time preprocessing of each task, torch-free (OpenCV only).
//
// - Classification equals the official evaluation transform (torchvision on PIL): RGB, shorter
//   side resized to `size` with PIL's bicubic filter, centre crop size x size, ToTensor, Normalize
//   with the ImageNet mean/std.
// - Detection equals mmdetection 2.x's test pipeline for the official Mask R-CNN configs:
// keep-ratio
//   rescale to (1333, 800) with OpenCV bilinear on uint8, mmcv imnormalize. Padding to a multiple
//   of 32 happens when images are batched (it depends on the batch).
// - Segmentation equals mmsegmentation 0.x's pipeline for the official UperNet configs: keep-ratio
//   rescale to (2048, 512) or (2560, 640), then a second bilinear resize up to multiples of 32.
// All functions are thread-safe and throw PreprocessError (an std::invalid_argument) on bad input.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "models/normalized_image.h"
#include "models/registry.h"

namespace iis::models::preprocess {

class PreprocessError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

enum class PreprocessKind { kClassification, kDetection, kSegmentation };

struct PreprocessSpec {
  PreprocessKind kind = PreprocessKind::kClassification;
  // Classification: crop size (224, 384, 512 or 640 for the official models).
  int size = 224;
  // Detection/segmentation: mmcv img_scale (long edge limit, short edge target).
  int scale_long = 1333;
  int scale_short = 800;
  // Detection: padding divisor applied at batching; segmentation: resize-to-multiple divisor.
  int size_divisor = 32;
};

// Returns the test-time preprocessing of `arch` (its task, input size, scale and divisor). The one
// translation from the registry, used by the server's runtime and by internimage-predict.
PreprocessSpec SpecFor(const Architecture& arch);

// Decodes a JPEG/PNG/WebP/BMP file to 8-bit 3-channel BGR (grayscale is replicated, alpha is
// dropped, 16-bit is scaled to 8-bit). `apply_exif_orientation` rotates by the EXIF tag as
// mmcv/OpenCV do (detection, segmentation); classification ignores it, as PIL does.
cv::Mat DecodeImage(std::string_view bytes, bool apply_exif_orientation);

// Runs the pipeline of `spec` on an 8-bit 3-channel image, BGR (as decoded) or RGB (`is_rgb`).
NormalizedImage Preprocess(const cv::Mat& image, bool is_rgb, const PreprocessSpec& spec);

// Returns mmcv's keep-ratio target size (new_w, new_h) for an image of w x h and img_scale
// (long, short): sf = min(long/max(w,h), short/min(w,h)), new = int(dim * sf + 0.5).
std::pair<int, int> RescaleSize(int width, int height, int scale_long, int scale_short);

// Returns the (width, height) torchvision's Resize(size) gives: shorter side = size, longer side
// truncated from size * long / short.
std::pair<int, int> ShorterSideSize(int width, int height, int size);

}  // namespace iis::models::preprocess
