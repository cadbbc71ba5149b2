#include "models/preprocess/preprocess.h"

#include <cmath>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "models/preprocess/pil_resample.h"

namespace iis::models::preprocess {
namespace {

// torchvision/timm IMAGENET_DEFAULT_MEAN / STD (on [0, 1] values).
constexpr float kClsMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kClsStd[3] = {0.229f, 0.224f, 0.225f};
// mmcv img_norm_cfg of the official detection/segmentation configs (on [0, 255] values, RGB).
constexpr double kDenseMean[3] = {123.675, 116.28, 103.53};
constexpr double kDenseStd[3] = {58.395, 57.12, 57.375};

// Python's round() for x.5 values: to the nearest even integer (CenterCrop uses it).
int RoundHalfEven(double x) { return static_cast<int>(std::nearbyint(x)); }

void CheckImage(const cv::Mat& image) {
  if (image.empty()) throw PreprocessError("image is empty");
  if (image.depth() != CV_8U || image.channels() != 3) {
    throw PreprocessError("image must be 8-bit with 3 channels, got depth " +
                          std::to_string(image.depth()) + " and " +
                          std::to_string(image.channels()) + " channels");
  }
}

NormalizedImage Classification(const cv::Mat& image, bool is_rgb, int size) {
  cv::Mat rgb;
  if (is_rgb) {
    rgb = image.isContinuous() ? image : image.clone();
  } else {
    cv::cvtColor(image, rgb, cv::COLOR_BGR2RGB);
  }
  const auto [rw, rh] = ShorterSideSize(rgb.cols, rgb.rows, size);
  ResizeWindow crop;
  crop.width = crop.height = size;
  crop.x0 = RoundHalfEven((rw - size) / 2.0);
  crop.y0 = RoundHalfEven((rh - size) / 2.0);
  ImageView8 view{rgb.data, rgb.cols, rgb.rows, 3, static_cast<int64_t>(rgb.step[0])};
  const std::vector<uint8_t> pixels = PilResize(view, rw, rh, crop, PilFilter::kBicubic);

  NormalizedImage out;
  out.height = out.width = size;
  out.original_height = image.rows;
  out.original_width = image.cols;
  const size_t plane = static_cast<size_t>(size) * size;
  out.chw.resize(3 * plane);
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) {
      // ToTensor (divide by 255) then Normalize (subtract, divide), in float32 like torchvision.
      const float v = static_cast<float>(pixels[i * 3 + c]) / 255.0f;
      out.chw[c * plane + i] = (v - kClsMean[c]) / kClsStd[c];
    }
  }
  return out;
}

// mmcv.imnormalize on a uint8 BGR/RGB image: float32, BGR->RGB, subtract mean, multiply by 1/std.
void NormalizeDense(const cv::Mat& resized, bool is_rgb, NormalizedImage* out) {
  cv::Mat f;
  resized.convertTo(f, CV_32F);
  if (!is_rgb) cv::cvtColor(f, f, cv::COLOR_BGR2RGB);
  cv::subtract(f, cv::Scalar(kDenseMean[0], kDenseMean[1], kDenseMean[2]), f);
  cv::multiply(f, cv::Scalar(1.0 / kDenseStd[0], 1.0 / kDenseStd[1], 1.0 / kDenseStd[2]), f);
  out->height = f.rows;
  out->width = f.cols;
  const size_t plane = static_cast<size_t>(f.rows) * f.cols;
  out->chw.resize(3 * plane);
  cv::Mat planes[3];
  for (int c = 0; c < 3; ++c) {
    planes[c] = cv::Mat(f.rows, f.cols, CV_32F, out->chw.data() + c * plane);
  }
  cv::split(f, planes);
}

}  // namespace

cv::Mat DecodeImage(std::string_view bytes, bool apply_exif_orientation) {
  if (bytes.empty()) throw PreprocessError("image is empty (0 bytes)");
  const cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U,
                    const_cast<char*>(bytes.data()));  // read-only use
  int flags = cv::IMREAD_COLOR;
  if (!apply_exif_orientation) flags |= cv::IMREAD_IGNORE_ORIENTATION;
  cv::Mat image;
  try {
    image = cv::imdecode(buf, flags);
  } catch (const cv::Exception& e) {
    throw PreprocessError(std::string("image could not be decoded: ") + e.what());
  }
  if (image.empty()) {
    throw PreprocessError("image could not be decoded (" + std::to_string(bytes.size()) +
                          " bytes: not a complete JPEG, PNG, WebP or BMP file)");
  }
  return image;
}

std::pair<int, int> RescaleSize(int width, int height, int scale_long, int scale_short) {
  const double long_edge = std::max(scale_long, scale_short);
  const double short_edge = std::min(scale_long, scale_short);
  const double sf =
      std::min(long_edge / std::max(width, height), short_edge / std::min(width, height));
  return {static_cast<int>(width * sf + 0.5), static_cast<int>(height * sf + 0.5)};
}

std::pair<int, int> ShorterSideSize(int width, int height, int size) {
  if (width <= height) {
    return {size, static_cast<int>(static_cast<double>(size) * height / width)};
  }
  return {static_cast<int>(static_cast<double>(size) * width / height), size};
}

NormalizedImage Preprocess(const cv::Mat& image, bool is_rgb, const PreprocessSpec& spec) {
  CheckImage(image);
  if (spec.kind == PreprocessKind::kClassification) {
    if (spec.size <= 0) throw PreprocessError("classification size must be positive");
    return Classification(image, is_rgb, spec.size);
  }
  NormalizedImage out;
  out.original_height = image.rows;
  out.original_width = image.cols;
  const auto [nw, nh] = RescaleSize(image.cols, image.rows, spec.scale_long, spec.scale_short);
  if (nw <= 0 || nh <= 0) {
    throw PreprocessError("image of " + std::to_string(image.cols) + "x" +
                          std::to_string(image.rows) + " rescales to an empty image");
  }
  cv::Mat resized;
  cv::resize(image, resized, cv::Size(nw, nh), 0, 0, cv::INTER_LINEAR);
  out.scale_x = static_cast<float>(static_cast<double>(nw) / image.cols);
  out.scale_y = static_cast<float>(static_cast<double>(nh) / image.rows);
  if (spec.kind == PreprocessKind::kSegmentation) {
    const int d = spec.size_divisor;
    const int mw = (nw + d - 1) / d * d, mh = (nh + d - 1) / d * d;
    cv::Mat stretched;
    cv::resize(resized, stretched, cv::Size(mw, mh), 0, 0, cv::INTER_LINEAR);
    resized = stretched;
  }
  NormalizeDense(resized, is_rgb, &out);
  return out;
}

PreprocessSpec SpecFor(const Architecture& arch) {
  PreprocessSpec spec;
  switch (arch.task) {
    case Task::kClassification:
      spec.kind = PreprocessKind::kClassification;
      spec.size = arch.input_size;
      return spec;
    case Task::kDetection:
      spec.kind = PreprocessKind::kDetection;
      break;
    case Task::kSegmentation:
      spec.kind = PreprocessKind::kSegmentation;
      break;
  }
  spec.scale_long = arch.scale_long;
  spec.scale_short = arch.scale_short;
  spec.size_divisor = arch.size_divisor;
  return spec;
}

}  // namespace iis::models::preprocess
