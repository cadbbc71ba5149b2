// Non-maximum suppression for the RPN (per FPN level) and the RCNN head (per class).
//
// Schemas (declared once in ops/nms.cc, kernels in ops/cpu/nms_cpu.cc and ops/cuda/nms_cuda.cc):
//   iis::nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor
//   iis::batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor
//
// Semantics are mmcv 1.5's nms / batched_nms (docs/detection-segmentation.md D.5), so that kept
// sets match the official models bit for bit:
// * Boxes are [x1, y1, x2, y2]; area = (x2 - x1) * (y2 - y1) with no +1 (mmcv offset 0).
// * Boxes are visited by decreasing score. Ties keep the lower index first (a stable sort; mmcv's
//   and torchvision's sorts leave tie order unspecified). NaN scores sort before every number, as
//   torch.sort(descending=True) puts them.
// * A visited box that is not suppressed is kept and suppresses every later box j with
//   IoU > iou_threshold (strictly greater: IoU exactly at the threshold is kept), where, in
//   float32 and in this order, inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1)) and
//   IoU = inter / (area_i + area_j - inter). The threshold is compared as float32 (mmcv's kernel
//   takes a float), so an IoU equal to float(iou_threshold) is kept.
// * Zero-area boxes: when the union is 0 (two zero-area boxes) the IoU counts as 0, so such boxes
//   never suppress each other; a zero-area box against a box of positive area has IoU 0 as well.
//   Boxes with x2 < x1 or y2 < y1 get negative areas and go through the same formula unchanged.
// * The result is an int64 tensor of kept indices into `boxes`, in decreasing score order, on the
//   inputs' device.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace iis::ops {

// batched_nms runs one NMS over all boxes below this many boxes, and one per idx value from it on
// (mmcv's split_thr).
inline constexpr int64_t kBatchedNmsSplitThreshold = 10000;

// Runs NMS on `boxes` (N, 4) and `scores` (N,), both float32 on one device (CPU or CUDA), through
// the dispatcher. Returns the kept indices (int64, (M,)), best score first. N = 0 gives an empty
// result. Throws c10::Error naming the argument when a rank, shape, dtype or device is wrong or
// iou_threshold is outside [0, 1]. The CUDA kernel needs N * ceil(N / 64) * 8 bytes of scratch.
// Thread-safe.
at::Tensor Nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);

// Runs class-aware (or level-aware) NMS as mmcv's batched_nms(class_agnostic=False): boxes with
// different `idxs` (N,) values (any integer dtype) never suppress each other. Exactly as mmcv,
// every box is first shifted by float32(idx) * (max_coordinate + 1) (float32 arithmetic,
// max_coordinate = boxes.max()); then, when N < kBatchedNmsSplitThreshold, one Nms call runs over
// all shifted boxes, otherwise one per distinct idx value, whose survivors are merged by
// decreasing score (ties: lower index first). Returns the kept indices into `boxes` (int64), best
// score first. Because of the shift, boxes of different idx can only interact when coordinates are
// below -1 (as in mmcv). Empty input gives an empty result. Throws c10::Error as Nms does, and
// when `idxs` is not an integer (N,) tensor on the boxes' device. Thread-safe.
at::Tensor BatchedNms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                      double iou_threshold);

// Kernel-side helpers shared by the device kernels; model code calls Nms / BatchedNms.

// Checks ranks, shapes, dtypes (float32), that both tensors share a device, and that
// iou_threshold is in [0, 1]. `op` names the op in the message. Throws c10::Error. Thread-safe.
void CheckNmsArguments(const char* op, const at::Tensor& boxes, const at::Tensor& scores,
                       double iou_threshold);

// CheckNmsArguments plus the checks on `idxs`. Throws c10::Error. Thread-safe.
void CheckBatchedNmsArguments(const at::Tensor& boxes, const at::Tensor& scores,
                              const at::Tensor& idxs, double iou_threshold);

}  // namespace iis::ops
