// COCO uncompressed run-length encoding of binary masks, as vision.proto's Rle carries them.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "opencv2/core/mat.hpp"

namespace iis::client {

// Decodes runs of a height x width mask read in column-major order, alternating 0s and 1s and
// starting with 0s, into a CV_8UC1 matrix of 0 and 1. Fails with INVALID_ARGUMENT when the size
// is not positive (or over 2^28 pixels) or the runs do not add up to height * width. Thread-safe.
absl::StatusOr<cv::Mat> DecodeRle(int height, int width, absl::Span<const uint32_t> counts);

// Returns the number of set pixels the runs describe (the sum of the odd-indexed runs).
int64_t RleArea(absl::Span<const uint32_t> counts);

}  // namespace iis::client
