#include "client/cli/rle.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "opencv2/core.hpp"

namespace iis::client {

absl::StatusOr<cv::Mat> DecodeRle(int height, int width, absl::Span<const uint32_t> counts) {
  constexpr int64_t kMaxPixels = int64_t{1} << 28;
  const int64_t pixels = static_cast<int64_t>(height) * width;
  if (height <= 0 || width <= 0 || pixels > kMaxPixels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mask: expected a positive size of at most 2^28 pixels, got ", width, "x", height));
  }
  int64_t total = 0;
  for (uint32_t run : counts) total += run;
  if (total != pixels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mask: runs add up to ", total, " pixels, expected ", width, "x", height, " = ", pixels));
  }
  // Column-major data is the row-major data of the transposed (width x height) mask.
  cv::Mat transposed(width, height, CV_8UC1);
  uint8_t* out = transposed.ptr<uint8_t>(0);
  uint8_t value = 0;
  for (uint32_t run : counts) {
    std::memset(out, value, run);
    out += run;
    value ^= 1;
  }
  cv::Mat mask;
  cv::transpose(transposed, mask);
  return mask;
}

int64_t RleArea(absl::Span<const uint32_t> counts) {
  int64_t area = 0;
  for (size_t i = 1; i < counts.size(); i += 2) area += counts[i];
  return area;
}

}  // namespace iis::client
