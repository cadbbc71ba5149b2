// Input images for both client tools: finding files, decoding, raw pixels, synthetic JPEGs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "internimage/serving/v1/vision.pb.h"
#include "opencv2/core/mat.hpp"

namespace iis::client {

// Expands `paths` into image files: a file is taken as is (whatever its extension), a directory
// contributes every .jpg/.jpeg/.png/.webp/.bmp file below it (recursively, sorted by path).
// Fails with NOT_FOUND for a path that does not exist and with INVALID_ARGUMENT when a directory
// holds no image at all. Thread-safe.
absl::StatusOr<std::vector<std::string>> ExpandImagePaths(const std::vector<std::string>& paths);

// Decodes an encoded image (JPEG, PNG, WebP, BMP) into 8-bit BGR. `name` (the file) starts the
// error message; fails with INVALID_ARGUMENT when the bytes are not a decodable image.
absl::StatusOr<cv::Mat> DecodeImage(absl::string_view name, absl::string_view bytes);

// Sets `image` to the raw-pixel form of `bgr` (an 8-bit, 3-channel image): UINT8_HWC_RGB with
// shape [height, width, 3].
void SetRawImage(const cv::Mat& bgr, ::internimage::serving::v1::Image* image);

// Sets `image` to a ready network input made from `bgr`: resized to size x size (area
// interpolation), RGB, scaled to [0, 1] and normalised with the ImageNet mean and std, as
// FLOAT32_CHW with shape [3, size, size]. For load tests that leave preprocessing out.
void SetNormalizedTensor(const cv::Mat& bgr, int size, ::internimage::serving::v1::Image* image);

// Returns a deterministic JPEG (quality 90) of width x height pixels with gradients, shapes and
// noise, so its size and decode cost are like a photograph's. Both sizes must be in [1, 16384].
std::string MakeSyntheticJpeg(int width, int height, uint64_t seed);

// Writes `image` (8-bit, 1 or 3 channels) to `path` as PNG. Fails with UNAVAILABLE naming the
// path when it cannot be written.
absl::Status WritePng(const std::string& path, const cv::Mat& image);

struct ImageSize {
  int width = 0;
  int height = 0;
};
// Parses "WIDTHxHEIGHT" (e.g. 640x480) for option `flag`; each side must be in [1, 16384].
absl::StatusOr<ImageSize> ParseImageSize(absl::string_view flag, absl::string_view text);

}  // namespace iis::client
