#include "ops/testing/dcnv3_reference.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

namespace iis::ops::testing_support {
namespace {

// True when the point (y, x) is sampled at all: -1 < y < height and -1 < x < width, strictly.
bool Inside(int64_t height, int64_t width, double y, double x) {
  return y > -1.0 && y < static_cast<double>(height) && x > -1.0 && x < static_cast<double>(width);
}

// Bilinear sample of channel c at (y, x), an Inside() point; corners outside the image read 0.
double Sample(const double* image, int64_t height, int64_t width, int64_t channels, int64_t c,
              double y, double x) {
  const double y0 = std::floor(y);
  const double x0 = std::floor(x);
  const double ly = y - y0;
  const double lx = x - x0;
  auto at = [&](double yy, double xx) -> double {
    if (yy < 0 || xx < 0 || yy > static_cast<double>(height - 1) ||
        xx > static_cast<double>(width - 1)) {
      return 0.0;
    }
    return image[(static_cast<int64_t>(yy) * width + static_cast<int64_t>(xx)) * channels + c];
  };
  return (1 - ly) * (1 - lx) * at(y0, x0) + (1 - ly) * lx * at(y0, x0 + 1) +
         ly * (1 - lx) * at(y0 + 1, x0) + ly * lx * at(y0 + 1, x0 + 1);
}

}  // namespace

at::Tensor Dcnv3Reference(const at::Tensor& value, const at::Tensor& offset, const at::Tensor& mask,
                          const Dcnv3Params& p) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor v = value.to(at::kCPU).to(at::kDouble).contiguous();
  const at::Tensor o = offset.to(at::kCPU).to(at::kDouble).contiguous();
  const at::Tensor m = mask.to(at::kCPU).to(at::kDouble).contiguous();
  const int64_t n_images = v.size(0), height = v.size(1), width = v.size(2), channels = v.size(3);
  const int64_t h_out =
      (height + 2 * p.pad_h - (p.dilation_h * (p.kernel_h - 1) + 1)) / p.stride_h + 1;
  const int64_t w_out =
      (width + 2 * p.pad_w - (p.dilation_w * (p.kernel_w - 1) + 1)) / p.stride_w + 1;
  const int64_t groups = p.group, depth = p.group_channels, points = p.Points();
  const int64_t half_w = (p.dilation_w * (p.kernel_w - 1)) / 2;
  const int64_t half_h = (p.dilation_h * (p.kernel_h - 1)) / 2;
  const double s = p.offset_scale;

  // Point k of the window, in the documented x-outer order with the centre optionally skipped.
  std::vector<int64_t> point_i, point_j;
  for (int64_t i = 0; i < p.kernel_w; ++i) {
    for (int64_t j = 0; j < p.kernel_h; ++j) {
      if (p.remove_center && i == p.kernel_w / 2 && j == p.kernel_h / 2) continue;
      point_i.push_back(i);
      point_j.push_back(j);
    }
  }

  at::Tensor out = at::zeros({n_images, h_out, w_out, channels}, f64);
  const double* vd = v.data_ptr<double>();
  const double* od = o.data_ptr<double>();
  const double* md = m.data_ptr<double>();
  double* out_d = out.data_ptr<double>();
  std::vector<double> weights(points);
  for (int64_t n = 0; n < n_images; ++n) {
    const double* image = vd + n * height * width * channels;
    for (int64_t ho = 0; ho < h_out; ++ho) {
      for (int64_t wo = 0; wo < w_out; ++wo) {
        const int64_t pixel = (n * h_out + ho) * w_out + wo;
        for (int64_t g = 0; g < groups; ++g) {
          const double* logits = md + pixel * groups * points + g * points;
          if (p.mask_is_logits) {
            double max_logit = logits[0];
            for (int64_t k = 1; k < points; ++k) max_logit = std::max(max_logit, logits[k]);
            double sum = 0;
            for (int64_t k = 0; k < points; ++k) sum += std::exp(logits[k] - max_logit);
            for (int64_t k = 0; k < points; ++k) weights[k] = std::exp(logits[k] - max_logit) / sum;
          } else {
            for (int64_t k = 0; k < points; ++k) weights[k] = logits[k];
          }
          for (int64_t k = 0; k < points; ++k) {
            const double dx = od[(pixel * groups * points + g * points + k) * 2];
            const double dy = od[(pixel * groups * points + g * points + k) * 2 + 1];
            const double x = static_cast<double>(wo * p.stride_w - p.pad_w + half_w) +
                             (static_cast<double>(point_i[k] * p.dilation_w - half_w) + dx) * s;
            const double y = static_cast<double>(ho * p.stride_h - p.pad_h + half_h) +
                             (static_cast<double>(point_j[k] * p.dilation_h - half_h) + dy) * s;
            if (!Inside(height, width, y, x)) continue;  // Contributes nothing, mask included.
            for (int64_t d = 0; d < depth; ++d) {
              const int64_t c = g * depth + d;
              out_d[pixel * channels + c] +=
                  weights[k] * Sample(image, height, width, channels, c, y, x);
            }
          }
        }
      }
    }
  }
  return out;
}

}  // namespace iis::ops::testing_support
