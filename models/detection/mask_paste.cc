// Compiled with -ffp-contract=off (models/CMakeLists.txt): a*b + c must not become an FMA, or the
// sums would round differently from LibTorch's grid sampler.
#include "models/detection/mask_paste.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace iis::models::detection {
namespace {

// The sampling geometry of one output column (or row) along one axis of the source mask, as
// LibTorch's vectorised grid sampler derives it from a grid coordinate.
struct AxisSample {
  float lo_weight;  // weight of the lower source index (e for x, s for y)
  float hi_weight;  // weight of the upper source index (w for x, n for y)
  int lo_index;
  bool lo_inside;
  bool hi_inside;
};

// mmdet: grid = (pixel centre - c1) / (c2 - c1) * 2 - 1, with +-inf replaced by 0; then the
// sampler (align_corners=False): source = (grid + 1) * (size / 2) - 0.5, bilinear, zero padding.
AxisSample SampleAxis(int pixel, float c1, float c2, int size) {
  const float centre = static_cast<float>(pixel) + 0.5f;
  float g = (centre - c1) / (c2 - c1) * 2.0f - 1.0f;
  if (std::isinf(g)) g = 0.0f;
  const float scaling = static_cast<float>(size) / 2.0f;
  const float src = (g + 1.0f) * scaling - 0.5f;
  const float lo = std::floor(src);
  AxisSample a;
  a.hi_weight = src - lo;
  a.lo_weight = 1.0f - a.hi_weight;
  // The sampler converts `lo` to int32 and tests -1 < index < size; a NaN or out-of-range value
  // converts to INT_MIN, i.e. outside. Float comparisons give the same answer without the cast.
  a.lo_inside = lo >= 0.0f && lo <= static_cast<float>(size - 1);
  a.hi_inside = lo >= -1.0f && lo <= static_cast<float>(size - 2);
  a.lo_index = (a.lo_inside || a.hi_inside) ? static_cast<int>(lo) : 0;
  return a;
}

void CheckSize(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

}  // namespace

std::array<float, 4> MmdetPasteBox(const std::array<float, 4>& box, float scale_x, float scale_y) {
  const float s[4] = {scale_x, scale_y, scale_x, scale_y};
  std::array<float, 4> out;
  for (int i = 0; i < 4; ++i) {
    const float scaled = box[i] * s[i];
    out[i] = scaled / s[i];
  }
  return out;
}

MaskWindow PasteMask(const float* probs, int mask_size, const std::array<float, 4>& box,
                     int image_height, int image_width, float threshold) {
  CheckSize(probs != nullptr, "PasteMask: probs must not be null");
  CheckSize(mask_size >= 1, "PasteMask: mask_size must be >= 1, got " + std::to_string(mask_size));
  CheckSize(image_height >= 1 && image_width >= 1, "PasteMask: image size must be positive, got " +
                                                       std::to_string(image_width) + "x" +
                                                       std::to_string(image_height));
  for (float c : box) {
    CheckSize(std::isfinite(c), "PasteMask: box coordinates must be finite, got " +
                                    std::to_string(box[0]) + ", " + std::to_string(box[1]) + ", " +
                                    std::to_string(box[2]) + ", " + std::to_string(box[3]));
  }
  // mmdet (skip_empty): x0_int = max(floor(x1) - 1, 0), x1_int = min(ceil(x2) + 1, W).
  auto lower = [](float c, int limit) {
    return static_cast<int>(
        std::clamp(std::floor(static_cast<double>(c)) - 1.0, 0.0, static_cast<double>(limit)));
  };
  auto upper = [](float c, int limit) {
    return static_cast<int>(
        std::clamp(std::ceil(static_cast<double>(c)) + 1.0, 0.0, static_cast<double>(limit)));
  };
  MaskWindow m;
  m.x0 = lower(box[0], image_width);
  m.y0 = lower(box[1], image_height);
  const int x_end = upper(box[2], image_width), y_end = upper(box[3], image_height);
  if (x_end <= m.x0 || y_end <= m.y0) return m;
  m.width = x_end - m.x0;
  m.height = y_end - m.y0;
  m.bits.assign(static_cast<size_t>(m.width) * m.height, 0);

  std::vector<AxisSample> cols(m.width);
  for (int i = 0; i < m.width; ++i) cols[i] = SampleAxis(m.x0 + i, box[0], box[2], mask_size);
  for (int r = 0; r < m.height; ++r) {
    const AxisSample ry = SampleAxis(m.y0 + r, box[1], box[3], mask_size);
    // Row offsets are only used for rows inside the mask.
    const int64_t row_n = static_cast<int64_t>(ry.lo_index) * mask_size;
    const int64_t row_s = row_n + mask_size;
    uint8_t* out = m.bits.data() + static_cast<size_t>(r) * m.width;
    for (int i = 0; i < m.width; ++i) {
      const AxisSample& cx = cols[i];
      // Weights and sum in the sampler's order: nw = s*e, ne = s*w, sw = n*e, se = n*w;
      // ((nw_v*nw + ne_v*ne) + sw_v*sw) + se_v*se, with 0 for corners outside the mask.
      const float nw = ry.lo_weight * cx.lo_weight;
      const float ne = ry.lo_weight * cx.hi_weight;
      const float sw = ry.hi_weight * cx.lo_weight;
      const float se = ry.hi_weight * cx.hi_weight;
      const float v_nw = (ry.lo_inside && cx.lo_inside) ? probs[row_n + cx.lo_index] : 0.0f;
      const float v_ne = (ry.lo_inside && cx.hi_inside) ? probs[row_n + cx.lo_index + 1] : 0.0f;
      const float v_sw = (ry.hi_inside && cx.lo_inside) ? probs[row_s + cx.lo_index] : 0.0f;
      const float v_se = (ry.hi_inside && cx.hi_inside) ? probs[row_s + cx.lo_index + 1] : 0.0f;
      const float value = v_nw * nw + v_ne * ne + v_sw * sw + v_se * se;
      out[i] = value >= threshold ? 1 : 0;
    }
  }
  return m;
}

std::vector<uint64_t> EncodeRle(const MaskWindow& window, int image_height, int image_width) {
  CheckSize(image_height >= 1 && image_width >= 1, "EncodeRle: image size must be positive, got " +
                                                       std::to_string(image_width) + "x" +
                                                       std::to_string(image_height));
  const bool empty = window.width == 0 || window.height == 0;
  CheckSize(empty || (window.x0 >= 0 && window.y0 >= 0 && window.width > 0 && window.height > 0 &&
                      window.x0 + window.width <= image_width &&
                      window.y0 + window.height <= image_height),
            "EncodeRle: window [" + std::to_string(window.x0) + ", " + std::to_string(window.y0) +
                ", " + std::to_string(window.width) + "x" + std::to_string(window.height) +
                "] is not inside the " + std::to_string(image_width) + "x" +
                std::to_string(image_height) + " image");
  CheckSize(empty || window.bits.size() == static_cast<size_t>(window.width) * window.height,
            "EncodeRle: window has " + std::to_string(window.bits.size()) + " values, expected " +
                std::to_string(static_cast<size_t>(window.width) * window.height));
  const uint64_t h = static_cast<uint64_t>(image_height);
  std::vector<uint64_t> counts;
  if (empty) {
    counts.push_back(h * static_cast<uint64_t>(image_width));
    return counts;
  }
  uint8_t current = 0;
  uint64_t run = static_cast<uint64_t>(window.x0) * h;  // whole zero columns before the window
  auto emit = [&](uint8_t value, uint64_t length) {
    if (length == 0) return;
    if (value != current) {
      counts.push_back(run);
      run = 0;
      current = value;
    }
    run += length;
  };
  const uint64_t above = static_cast<uint64_t>(window.y0);
  const uint64_t below = h - above - static_cast<uint64_t>(window.height);
  for (int x = 0; x < window.width; ++x) {
    emit(0, above);
    for (int y = 0; y < window.height; ++y)
      emit(window.bits[static_cast<size_t>(y) * window.width + x], 1);
    emit(0, below);
  }
  emit(0, static_cast<uint64_t>(image_width - window.x0 - window.width) * h);
  counts.push_back(run);
  return counts;
}

}  // namespace iis::models::detection
