#include "ops/testing/roi_align_reference.h"

#include <ATen/core/TensorAccessor.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>

namespace iis::ops::reference {
namespace {

// Bilinear value of `plane` (H, W) at (y, x) with the RoIAlign boundary rule.
double Bilinear(const at::TensorAccessor<double, 2>& plane, int64_t height, int64_t width, double y,
                double x) {
  if (y < -1.0 || y > static_cast<double>(height) || x < -1.0 || x > static_cast<double>(width)) {
    return 0.0;
  }
  y = std::max(y, 0.0);
  x = std::max(x, 0.0);
  int64_t y_low = static_cast<int64_t>(std::floor(y));
  int64_t x_low = static_cast<int64_t>(std::floor(x));
  int64_t y_high = y_low + 1;
  int64_t x_high = x_low + 1;
  if (y_low >= height - 1) {
    y_low = y_high = height - 1;
    y = static_cast<double>(y_low);
  }
  if (x_low >= width - 1) {
    x_low = x_high = width - 1;
    x = static_cast<double>(x_low);
  }
  const double ly = y - static_cast<double>(y_low);
  const double lx = x - static_cast<double>(x_low);
  const double hy = 1.0 - ly;
  const double hx = 1.0 - lx;
  return hy * hx * plane[y_low][x_low] + hy * lx * plane[y_low][x_high] +
         ly * hx * plane[y_high][x_low] + ly * lx * plane[y_high][x_high];
}

}  // namespace

at::Tensor RoiAlignReference(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                             int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                             bool aligned) {
  const at::Tensor in = input.to(at::kDouble).contiguous();
  const at::Tensor boxes = rois.to(at::kDouble).contiguous();
  const auto in_a = in.accessor<double, 4>();
  const auto roi_a = boxes.accessor<double, 2>();
  const int64_t channels = in.size(1);
  const int64_t height = in.size(2);
  const int64_t width = in.size(3);
  const int64_t num_rois = boxes.size(0);
  at::Tensor out = at::zeros({num_rois, channels, pooled_height, pooled_width}, in.options());
  auto out_a = out.accessor<double, 4>();
  const double offset = aligned ? 0.5 : 0.0;
  for (int64_t k = 0; k < num_rois; ++k) {
    const int64_t b = static_cast<int64_t>(roi_a[k][0]);
    const double start_x = roi_a[k][1] * spatial_scale - offset;
    const double start_y = roi_a[k][2] * spatial_scale - offset;
    double roi_w = roi_a[k][3] * spatial_scale - offset - start_x;
    double roi_h = roi_a[k][4] * spatial_scale - offset - start_y;
    if (!aligned) {
      roi_w = std::max(roi_w, 1.0);
      roi_h = std::max(roi_h, 1.0);
    }
    const double bin_w = roi_w / static_cast<double>(pooled_width);
    const double bin_h = roi_h / static_cast<double>(pooled_height);
    const int64_t grid_w =
        sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(std::ceil(roi_w / pooled_width));
    const int64_t grid_h = sampling_ratio > 0
                               ? sampling_ratio
                               : static_cast<int64_t>(std::ceil(roi_h / pooled_height));
    const double count = static_cast<double>(std::max<int64_t>(grid_w * grid_h, 1));
    for (int64_t c = 0; c < channels; ++c) {
      const auto plane = in_a[b][c];
      for (int64_t ph = 0; ph < pooled_height; ++ph) {
        for (int64_t pw = 0; pw < pooled_width; ++pw) {
          double sum = 0.0;
          for (int64_t iy = 0; iy < grid_h; ++iy) {
            const double y = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h;
            for (int64_t ix = 0; ix < grid_w; ++ix) {
              const double x = start_x + pw * bin_w + (ix + 0.5) * bin_w / grid_w;
              sum += Bilinear(plane, height, width, y, x);
            }
          }
          out_a[k][c][ph][pw] = sum / count;
        }
      }
    }
  }
  return out;
}

}  // namespace iis::ops::reference
