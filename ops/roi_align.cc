// Schema of iis::roi_align, the dispatcher-calling C++ API and the argument checks shared by the
// device kernels.
#include "ops/roi_align.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cmath>

namespace iis::ops {

TORCH_LIBRARY_FRAGMENT(iis, m) {
  m.def(
      "roi_align(Tensor input, Tensor rois, float spatial_scale, int pooled_height, "
      "int pooled_width, int sampling_ratio, bool aligned) -> Tensor");
}

at::Tensor RoiAlign(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                    int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                    bool aligned) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("iis::roi_align", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double,
                                               int64_t, int64_t, int64_t, bool)>();
  return op.call(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
}

void CheckRoiAlignArguments(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                            int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio) {
  TORCH_CHECK(input.dim() == 4, "iis::roi_align: input must be a 4-D (N, C, H, W) tensor, got ",
              input.dim(), "-D with shape ", input.sizes());
  TORCH_CHECK(input.size(2) > 0 && input.size(3) > 0,
              "iis::roi_align: input height and width must be positive, got shape ", input.sizes());
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5,
              "iis::roi_align: rois must have shape (K, 5) [batch_index, x1, y1, x2, y2], got ",
              rois.sizes());
  TORCH_CHECK(rois.device() == input.device(),
              "iis::roi_align: rois must be on the input's device ", input.device(), ", got ",
              rois.device());
  TORCH_CHECK(pooled_height > 0 && pooled_width > 0,
              "iis::roi_align: pooled_height and pooled_width must be positive, got ",
              pooled_height, " and ", pooled_width);
  TORCH_CHECK(
      pooled_height <= kRoiAlignMaxSamplesPerAxis && pooled_width <= kRoiAlignMaxSamplesPerAxis,
      "iis::roi_align: pooled_height and pooled_width must be at most ", kRoiAlignMaxSamplesPerAxis,
      ", got ", pooled_height, " and ", pooled_width);
  TORCH_CHECK(sampling_ratio >= 0 && sampling_ratio <= kRoiAlignMaxSamplesPerAxis,
              "iis::roi_align: sampling_ratio must be in [0, ", kRoiAlignMaxSamplesPerAxis,
              "] (0 means adaptive), got ", sampling_ratio);
  TORCH_CHECK(std::isfinite(spatial_scale) && spatial_scale > 0,
              "iis::roi_align: spatial_scale must be finite and positive, got ", spatial_scale);
}

RoiAxis ComputeRoiAxis(float c1, float c2, float spatial_scale, int64_t pooled,
                       int64_t sampling_ratio, bool aligned) {
  const float offset = aligned ? 0.5f : 0.0f;
  RoiAxis axis;
  axis.start = c1 * spatial_scale - offset;
  const float end = c2 * spatial_scale - offset;
  float extent = end - axis.start;
  if (!aligned && extent < 1.0f) extent = 1.0f;
  axis.bin_size = extent / static_cast<float>(pooled);
  if (sampling_ratio > 0) {
    axis.grid = sampling_ratio;
  } else {
    const float grid = std::ceil(extent / static_cast<float>(pooled));
    if (!(grid > 0.0f)) {
      axis.grid = 0;
    } else if (grid > static_cast<float>(kRoiAlignMaxSamplesPerAxis)) {
      axis.grid = kRoiAlignMaxSamplesPerAxis + 1;
    } else {
      axis.grid = static_cast<int64_t>(grid);
    }
  }
  return axis;
}

void CheckRoiValues(const at::Tensor& rois_cpu, int64_t batch_size, double spatial_scale,
                    int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                    bool aligned) {
  TORCH_CHECK(rois_cpu.device().is_cpu() && rois_cpu.scalar_type() == at::kFloat &&
                  rois_cpu.is_contiguous() && rois_cpu.dim() == 2 && rois_cpu.size(1) == 5,
              "iis::roi_align: internal error, CheckRoiValues needs contiguous float32 CPU "
              "(K, 5) rois");
  const float scale = static_cast<float>(spatial_scale);
  const float* roi = rois_cpu.data_ptr<float>();
  const int64_t num_rois = rois_cpu.size(0);
  for (int64_t k = 0; k < num_rois; ++k, roi += 5) {
    for (int i = 0; i < 5; ++i) {
      TORCH_CHECK(std::isfinite(roi[i]), "iis::roi_align: rois[", k, "][", i,
                  "] must be finite, got ", roi[i]);
    }
    TORCH_CHECK(roi[0] >= 0 && roi[0] < static_cast<float>(batch_size), "iis::roi_align: rois[", k,
                "] has batch index ", roi[0], ", expected a value in [0, ", batch_size,
                ") (the input's batch size; it is truncated "
                "to an integer)");
    const int64_t samples_x =
        pooled_width *
        ComputeRoiAxis(roi[1], roi[3], scale, pooled_width, sampling_ratio, aligned).grid;
    const int64_t samples_y =
        pooled_height *
        ComputeRoiAxis(roi[2], roi[4], scale, pooled_height, sampling_ratio, aligned).grid;
    TORCH_CHECK(samples_x <= kRoiAlignMaxSamplesPerAxis && samples_y <= kRoiAlignMaxSamplesPerAxis,
                "iis::roi_align: rois[", k, "] = [", roi[0], ", ", roi[1], ", ", roi[2], ", ",
                roi[3], ", ", roi[4], "] needs ", samples_x, " x ", samples_y,
                " sample positions, more than the supported ", kRoiAlignMaxSamplesPerAxis,
                " per axis (RoI too large or sampling_ratio too high)");
  }
}

}  // namespace iis::ops
