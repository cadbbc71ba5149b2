#include "client/common/images.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <random>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace iis::client {
namespace {

namespace fs = std::filesystem;
namespace pb = ::internimage::serving::v1;

constexpr int kMaxSide = 16384;

bool HasImageExtension(const fs::path& path) {
  const std::string ext = absl::AsciiStrToLower(path.extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".webp" || ext == ".bmp";
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandImagePaths(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (ec || !fs::exists(status)) {
      return absl::NotFoundError(absl::StrCat("image path '", path, "' does not exist"));
    }
    if (!fs::is_directory(status)) {
      files.push_back(path);
      continue;
    }
    std::vector<std::string> found;
    for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file(ec) && HasImageExtension(it->path())) {
        found.push_back(it->path().string());
      }
    }
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot list directory '", path, "': ", ec.message()));
    }
    if (found.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "directory '", path, "' holds no image (.jpg, .jpeg, .png, .webp or .bmp files)"));
    }
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

absl::StatusOr<cv::Mat> DecodeImage(absl::string_view name, absl::string_view bytes) {
  cv::Mat encoded(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat image;
  if (!bytes.empty()) image = cv::imdecode(encoded, cv::IMREAD_COLOR);
  if (image.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": expected a JPEG, PNG, WebP or BMP image, got ", bytes.size(),
                     " bytes that do not decode"));
  }
  return image;
}

void SetRawImage(const cv::Mat& bgr, pb::Image* image) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  pb::RawTensor* tensor = image->mutable_tensor();
  tensor->set_format(pb::RawTensor::UINT8_HWC_RGB);
  tensor->clear_shape();
  tensor->add_shape(rgb.rows);
  tensor->add_shape(rgb.cols);
  tensor->add_shape(3);
  std::string* data = tensor->mutable_data();
  data->resize(static_cast<size_t>(rgb.rows) * rgb.cols * 3);
  for (int y = 0; y < rgb.rows; ++y) {
    std::copy_n(rgb.ptr<char>(y), static_cast<size_t>(rgb.cols) * 3,
                data->data() + static_cast<size_t>(y) * rgb.cols * 3);
  }
}

void SetNormalizedTensor(const cv::Mat& bgr, int size, pb::Image* image) {
  cv::Mat resized, rgb;
  cv::resize(bgr, resized, cv::Size(size, size), 0, 0, cv::INTER_AREA);
  cv::cvtColor(resized, rgb, cv::COLOR_BGR2RGB);
  constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
  constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};
  pb::RawTensor* tensor = image->mutable_tensor();
  tensor->set_format(pb::RawTensor::FLOAT32_CHW);
  tensor->clear_shape();
  tensor->add_shape(3);
  tensor->add_shape(size);
  tensor->add_shape(size);
  const size_t plane = static_cast<size_t>(size) * size;
  std::vector<float> chw(3 * plane);
  for (int y = 0; y < size; ++y) {
    const uint8_t* row = rgb.ptr<uint8_t>(y);
    for (int x = 0; x < size; ++x) {
      for (int c = 0; c < 3; ++c) {
        chw[c * plane + static_cast<size_t>(y) * size + x] =
            (row[3 * x + c] / 255.0f - kMean[c]) / kStd[c];
      }
    }
  }
  tensor->set_data(
      std::string(reinterpret_cast<const char*>(chw.data()), chw.size() * sizeof(float)));
}

std::string MakeSyntheticJpeg(int width, int height, uint64_t seed) {
  width = std::clamp(width, 1, kMaxSide);
  height = std::clamp(height, 1, kMaxSide);
  cv::Mat image(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    auto* row = image.ptr<cv::Vec3b>(y);
    for (int x = 0; x < width; ++x) {
      row[x] = cv::Vec3b(static_cast<uchar>(255 * x / std::max(1, width - 1)),
                         static_cast<uchar>(255 * y / std::max(1, height - 1)),
                         static_cast<uchar>((x + y) % 256));
    }
  }
  std::mt19937_64 rng(seed);
  auto coord = [&rng](int limit) { return static_cast<int>(rng() % static_cast<uint64_t>(limit)); };
  auto colour = [&rng] {
    return cv::Scalar(static_cast<double>(rng() % 256), static_cast<double>(rng() % 256),
                      static_cast<double>(rng() % 256));
  };
  const int shapes = 6 + coord(6);
  for (int i = 0; i < shapes; ++i) {
    const cv::Point a(coord(width), coord(height));
    const cv::Point b(coord(width), coord(height));
    if (i % 2 == 0) {
      cv::rectangle(image, a, b, colour(), cv::FILLED);
    } else {
      cv::circle(image, a, 1 + coord(std::max(2, std::min(width, height) / 4)), colour(),
                 cv::FILLED);
    }
  }
  // Sensor-like noise, so the JPEG is as large as a photograph's rather than a flat drawing's.
  cv::Mat noisy(height, width, CV_16SC3);
  cv::RNG(seed | 1).fill(noisy, cv::RNG::NORMAL, 0, 12);
  cv::add(noisy, image, noisy, cv::noArray(), CV_16SC3);
  noisy.convertTo(image, CV_8UC3);
  std::vector<uchar> jpeg;
  cv::imencode(".jpg", image, jpeg, {cv::IMWRITE_JPEG_QUALITY, 90});
  return std::string(jpeg.begin(), jpeg.end());
}

absl::Status WritePng(const std::string& path, const cv::Mat& image) {
  try {
    if (cv::imwrite(path, image)) return absl::OkStatus();
  } catch (const cv::Exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot write '", path, "': ", e.what()));
  }
  return absl::UnavailableError(absl::StrCat("cannot write '", path, "'"));
}

absl::StatusOr<ImageSize> ParseImageSize(absl::string_view flag, absl::string_view text) {
  const size_t x = text.find('x');
  ImageSize size;
  if (x == absl::string_view::npos || !absl::SimpleAtoi(text.substr(0, x), &size.width) ||
      !absl::SimpleAtoi(text.substr(x + 1), &size.height) || size.width < 1 || size.height < 1 ||
      size.width > kMaxSide || size.height > kMaxSide) {
    return absl::InvalidArgumentError(absl::StrCat(flag,
                                                   ": expected WIDTHxHEIGHT with sides in [1, ",
                                                   kMaxSide, "], e.g. 640x480, got '", text, "'"));
  }
  return size;
}

}  // namespace iis::client
