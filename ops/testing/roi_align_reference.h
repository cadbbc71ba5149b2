// Slow, obviously correct RoIAlign for tests: a direct transcription of the definition in
// ops/roi_align.h (mmcv "avg" RoIAlign), one output element at a time, in double precision.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace iis::ops::reference {

// Returns the (K, C, pooled_height, pooled_width) float64 RoIAlign of `input` (N, C, H, W) over
// `rois` (K, 5), both float32 or float64 CPU tensors. Arguments must be valid (batch indices in
// range, H and W > 0); nothing is checked. Thread-safe.
at::Tensor RoiAlignReference(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                             int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                             bool aligned);

}  // namespace iis::ops::reference
