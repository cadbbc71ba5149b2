// RoIAlign ("avg" mode), the RoI feature extractor of the Mask R-CNN heads.
//
// Schema (declared once in ops/roi_align.cc, kernels in ops/cpu/roi_align_cpu.cc and
// ops/cuda/roi_align_cuda.cc):
//   iis::roi_align(Tensor input, Tensor rois, float spatial_scale, int pooled_height,
//                  int pooled_width, int sampling_ratio, bool aligned) -> Tensor
//
// Semantics are those of mmcv's RoIAlign (pool_mode "avg"), which is also torchvision's roi_align
// (spec: docs/detection-segmentation.md E.1). For RoI k = [b, x1, y1, x2, y2]:
//   offset = aligned ? 0.5 : 0
//   start_x = x1 * spatial_scale - offset, end_x = x2 * spatial_scale - offset (likewise y)
//   roi_w = end_x - start_x; when !aligned roi_w = max(roi_w, 1) (likewise roi_h)
//   bin_w = roi_w / pooled_width
//   grid_w = sampling_ratio > 0 ? sampling_ratio : ceil(roi_w / pooled_width)   (likewise h)
//   sample (iy, ix) of bin (ph, pw) sits at
//     y = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h,  x likewise,
//   out[k, c, ph, pw] = sum of the bilinear samples / max(grid_h * grid_w, 1).
// The batch index is truncated to an integer, as mmcv does.
// Bilinear rule: a sample with y < -1, y > H, x < -1 or x > W contributes 0; otherwise y (x) is
// clamped to >= 0, and when floor(y) >= H - 1 both rows are H - 1. A RoI whose adaptive grid is
// <= 0 on an axis (x2 < x1 or y2 < y1 with aligned and sampling_ratio 0) gives zeros, as in
// mmcv's and torchvision's CUDA kernels (their CPU kernels throw when exactly one axis is
// inverted: they size a buffer by the negative grid product).
// Arithmetic is float32 exactly as mmcv writes it (spatial_scale is rounded to float32 first, as
// mmcv's kernel takes it), so the CPU kernel matches mmcv's and torchvision's CPU kernels bit for
// bit on finite inputs. Samples outside the map are skipped rather than multiplied by zero weights,
// which only differs when the map holds inf or NaN.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace iis::ops {

// Largest number of sample positions per RoI and axis (pooled size x grid size). Larger RoIs or
// sampling ratios are rejected: they would only exhaust memory or time (a RoI of a million
// feature-map pixels is far beyond any real image).
inline constexpr int64_t kRoiAlignMaxSamplesPerAxis = int64_t{1} << 20;

// Pools `input` (N, C, H, W) over `rois` (K, 5) rows [batch_index, x1, y1, x2, y2] (input-image
// coordinates, scaled by `spatial_scale`) into a (K, C, pooled_height, pooled_width) tensor, by
// calling the iis::roi_align op through the dispatcher (so it runs on the inputs' device).
// Dtypes: float32 on CPU; float32, float16 or bfloat16 on CUDA (accumulated in float32, output in
// the input's dtype). `rois` is float32 or the input's dtype. K = 0 gives an empty output.
// Throws c10::Error, naming the argument, when: ranks or shapes are wrong, dtypes or devices differ
// or are unsupported, H or W is 0, pooled sizes are outside [1, kRoiAlignMaxSamplesPerAxis],
// sampling_ratio is outside [0, kRoiAlignMaxSamplesPerAxis], spatial_scale is not
// finite and positive, a RoI has a non-finite coordinate, a batch index outside [0, N), or needs
// more than kRoiAlignMaxSamplesPerAxis samples on an axis. On CUDA the RoIs are copied to the host
// for these checks (one small synchronising copy). Thread-safe.
at::Tensor RoiAlign(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                    int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                    bool aligned);

// Kernel-side helpers shared by the device kernels of iis::roi_align; model code calls RoiAlign.

// Checks everything about the arguments that does not need the RoI values: ranks, shapes, devices
// (input and rois on one device), pooled sizes, sampling_ratio and spatial_scale. Dtypes are
// checked by each device's kernel. Throws c10::Error naming the argument. Thread-safe.
void CheckRoiAlignArguments(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                            int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio);

// Sampling geometry of one RoI along one axis, in feature-map pixels.
struct RoiAxis {
  float start = 0;     // first edge: c1 * spatial_scale - (aligned ? 0.5 : 0)
  float bin_size = 0;  // extent / pooled size; negative when aligned and c2 < c1
  int64_t grid = 0;    // samples per bin: sampling_ratio, or ceil(extent / pooled) when that is
                       // 0; 0 when the adaptive value is <= 0; capped at
                       // kRoiAlignMaxSamplesPerAxis + 1 so huge RoIs can be reported
};

// Returns the geometry along one axis for the RoI edges c1, c2 (input-image coordinates),
// computed in float32 exactly as the kernels do. Pure function, thread-safe.
RoiAxis ComputeRoiAxis(float c1, float c2, float spatial_scale, int64_t pooled,
                       int64_t sampling_ratio, bool aligned);

// Checks the RoI values: `rois_cpu` is a contiguous float32 CPU (K, 5) tensor. Throws c10::Error
// naming the first bad RoI (non-finite coordinate, batch index outside [0, batch_size), or more
// than kRoiAlignMaxSamplesPerAxis samples on an axis). Thread-safe.
void CheckRoiValues(const at::Tensor& rois_cpu, int64_t batch_size, double spatial_scale,
                    int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                    bool aligned);

}  // namespace iis::ops
