#include "models/preprocess/pil_resample.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace iis::models::preprocess {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double BicubicWeight(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

double BilinearWeight(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Per output pixel of one axis: the first input index, the tap count, and the fixed-point taps.
struct AxisCoefficients {
  int taps_per_output = 0;  // stride of `weights`
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> weights;
};

AxisCoefficients ComputeCoefficients(int in_size, int out_size, PilFilter filter) {
  const double base_support = filter == PilFilter::kBicubic ? 2.0 : 1.0;
  double (*weight_fn)(double) = filter == PilFilter::kBicubic ? BicubicWeight : BilinearWeight;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = base_support * filter_scale;
  AxisCoefficients c;
  c.taps_per_output = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<size_t>(out_size) * c.taps_per_output, 0);
  std::vector<double> w(c.taps_per_output);
  const double inv_filter_scale = 1.0 / filter_scale;  // multiplied, as the reference does
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;
    // Truncation after +0.5, exactly as the reference rounds the window ends.
    int lo = static_cast<int>(center - support + 0.5);
    if (lo < 0) lo = 0;
    int hi = static_cast<int>(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    const int n = hi - lo;
    double total = 0.0;
    for (int i = 0; i < n; ++i) {
      w[i] = weight_fn((i + lo - center + 0.5) * inv_filter_scale);
      total += w[i];
    }
    int32_t* dst = &c.weights[static_cast<size_t>(o) * c.taps_per_output];
    for (int i = 0; i < n; ++i) {
      const double v = total != 0.0 ? w[i] / total : w[i];
      dst[i] = static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits)
                                          : 0.5 + v * (1 << kPrecisionBits));
    }
    c.first[o] = lo;
    c.count[o] = n;
  }
  return c;
}

inline uint8_t Clip8(int32_t v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace

std::vector<uint8_t> PilResize(const ImageView8& src, int out_width, int out_height,
                               const ResizeWindow& window, PilFilter filter) {
  if (src.width <= 0 || src.height <= 0 || src.channels <= 0 || src.data == nullptr) {
    throw std::invalid_argument("PilResize: empty source image");
  }
  if (out_width <= 0 || out_height <= 0) {
    throw std::invalid_argument("PilResize: output size must be positive, got " +
                                std::to_string(out_width) + "x" + std::to_string(out_height));
  }
  if (window.x0 < 0 || window.y0 < 0 || window.width <= 0 || window.height <= 0 ||
      window.x0 + window.width > out_width || window.y0 + window.height > out_height) {
    throw std::invalid_argument("PilResize: window is outside the " + std::to_string(out_width) +
                                "x" + std::to_string(out_height) + " output");
  }
  const int ch = src.channels;
  const bool need_h = out_width != src.width;
  const bool need_v = out_height != src.height;
  const AxisCoefficients hc = ComputeCoefficients(src.width, out_width, filter);
  const AxisCoefficients vc = ComputeCoefficients(src.height, out_height, filter);
  constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

  // Source rows the kept output rows read (all rows when there is no vertical pass).
  int row_lo = window.y0, row_hi = window.y0 + window.height;
  if (need_v) {
    row_lo = vc.first[window.y0];
    row_hi = vc.first[window.y0 + window.height - 1] + vc.count[window.y0 + window.height - 1];
    for (int o = window.y0; o < window.y0 + window.height; ++o) {
      row_lo = std::min(row_lo, vc.first[o]);
      row_hi = std::max(row_hi, vc.first[o] + vc.count[o]);
    }
  }

  // Horizontal pass over the needed source rows, kept output columns only.
  const int tmp_rows = row_hi - row_lo;
  const int64_t tmp_stride = static_cast<int64_t>(window.width) * ch;
  std::vector<uint8_t> tmp(static_cast<size_t>(tmp_rows) * tmp_stride);
  for (int r = 0; r < tmp_rows; ++r) {
    const uint8_t* in_row = src.data + static_cast<int64_t>(row_lo + r) * src.stride;
    uint8_t* out_row = tmp.data() + r * tmp_stride;
    for (int xo = 0; xo < window.width; ++xo) {
      const int x = window.x0 + xo;
      if (!need_h) {
        std::copy(in_row + x * ch, in_row + (x + 1) * ch, out_row + xo * ch);
        continue;
      }
      const int32_t* k = &hc.weights[static_cast<size_t>(x) * hc.taps_per_output];
      const uint8_t* p = in_row + static_cast<int64_t>(hc.first[x]) * ch;
      for (int c = 0; c < ch; ++c) {
        int32_t acc = kHalf;
        for (int i = 0; i < hc.count[x]; ++i) acc += p[i * ch + c] * k[i];
        out_row[xo * ch + c] = Clip8(acc);
      }
    }
  }

  // Vertical pass.
  std::vector<uint8_t> out(static_cast<size_t>(window.height) * tmp_stride);
  for (int yo = 0; yo < window.height; ++yo) {
    const int y = window.y0 + yo;
    uint8_t* out_row = out.data() + yo * tmp_stride;
    if (!need_v) {
      std::copy_n(tmp.data() + (y - row_lo) * tmp_stride, tmp_stride, out_row);
      continue;
    }
    const int32_t* k = &vc.weights[static_cast<size_t>(y) * vc.taps_per_output];
    const uint8_t* base = tmp.data() + (vc.first[y] - row_lo) * tmp_stride;
    for (int64_t i = 0; i < tmp_stride; ++i) {
      int32_t acc = kHalf;
      for (int t = 0; t < vc.count[y]; ++t) acc += base[t * tmp_stride + i] * k[t];
      out_row[i] = Clip8(acc);
    }
  }
  return out;
}

}  // namespace iis::models::preprocess
