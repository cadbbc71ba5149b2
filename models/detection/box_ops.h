// The tensor stages of Mask R-CNN inference between the convolutions, exactly as mmdetection 2.x
// computes them for the official configs (docs/detection-segmentation.md sections D and E):
// anchors, delta decoding, RPN proposal selection, RoI level assignment and feature extraction,
// and multi-class NMS. Every function works in float32 with the official operation order, so its
// results equal mmdetection's bit for bit on the same inputs (the sorts are stable where mmdet's
// tie order is unspecified).
//
// Boxes are [x1, y1, x2, y2] in the continuous convention (pixel i covers [i, i + 1), no +1 in
// widths). All functions are thread-safe and throw c10::Error naming the argument on bad input.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace iis::models::detection {

// Anchor generator settings of the official RPN (AnchorGenerator(scales=[8], ratios=[0.5, 1, 2],
// strides=[4, 8, 16, 32, 64]), base size = stride, centre offset 0).
inline constexpr int64_t kAnchorsPerLocation = 3;
inline constexpr std::array<int64_t, 5> kRpnStrides = {4, 8, 16, 32, 64};
// The RoI extractors pool from the first four FPN levels.
inline constexpr std::array<int64_t, 4> kRoiStrides = {4, 8, 16, 32};

// Returns the (3, 4) float32 base anchors of a level with this stride, centred at (0, 0), in
// ratio order 0.5, 1, 2: half-sizes 0.5 * stride * 8 * (1/sqrt(r), sqrt(r)). Requires stride > 0.
at::Tensor BaseAnchors(int64_t stride);

// Returns the (height * width * 3, 4) float32 anchors of a feature map: entry (y * width + x) * 3 +
// a is BaseAnchors(stride)[a] shifted by (x * stride, y * stride), i.e. centred on the top-left
// corner of each cell. Requires stride > 0 and height, width >= 0.
at::Tensor GridAnchors(int64_t stride, int64_t height, int64_t width);

// DeltaXYWHBBoxCoder.decode (means 0): for rois (n, 4) and deltas (n, 4k) (k boxes per roi,
// (dx, dy, dw, dh) each), returns (n, 4k) boxes: centre shift by roi size * d * std, size scaled
// by exp(clamp(d * std, +-|log(16 / 1000)|)), clipped to x in [0, max_width] and y in
// [0, max_height] (inclusive). float32 CPU or CUDA tensors on one device.
at::Tensor DecodeDeltas(const at::Tensor& rois, const at::Tensor& deltas,
                        const std::array<float, 4>& stds, int64_t max_height, int64_t max_width);

// Test-time RPN settings of the official configs (rpn test_cfg).
struct RpnSettings {
  int64_t nms_pre = 1000;        // candidates kept per level (by score) before NMS
  int64_t max_per_image = 1000;  // proposals kept after NMS
  double iou_threshold = 0.7;    // NMS per level, suppress IoU > threshold
};

// RPNHead._get_bboxes_single + _bbox_post_process for one image. cls[l] (3, h_l, w_l) logits,
// reg[l] (12, h_l, w_l) deltas and anchors[l] (h_l * w_l * 3, 4) per level, float32 on one device.
// Per level: sigmoid scores in (y, x, anchor) order; when more than nms_pre, a stable descending
// sort keeps the first nms_pre. Then, over all levels: decode (stds 1) clipped to the image's
// unpadded size (image_height, image_width), drop boxes with width or height <= 0, batched NMS
// with the level as class, keep max_per_image. Returns (k, 5) [x1, y1, x2, y2, score], best
// first; (0, 5) when nothing survives.
at::Tensor RpnProposals(const std::vector<at::Tensor>& cls, const std::vector<at::Tensor>& reg,
                        const std::vector<at::Tensor>& anchors, int64_t image_height,
                        int64_t image_width, const RpnSettings& settings = {});

// SingleRoIExtractor.map_roi_levels: the FPN level of each box of `boxes` (K, 4) float32,
// floor(log2(sqrt(w * h) / 56 + 1e-6)) clamped to [0, num_levels - 1], as int64 (K).
at::Tensor MapRoiLevels(const at::Tensor& boxes, int64_t num_levels);

// SingleRoIExtractor.forward with mmcv RoIAlign (aligned, sampling_ratio 0, avg): `rois` (K, 5)
// [batch_index, x1, y1, x2, y2] in input-image coordinates; feats are the four FPN maps (N, C, H,
// W) at kRoiStrides. Each RoI is pooled to output_size x output_size from the level MapRoiLevels
// assigns. Returns (K, C, output_size, output_size) in the features' dtype; (0, C, s, s) for K = 0.
at::Tensor ExtractRoiFeatures(const std::vector<at::Tensor>& feats, const at::Tensor& rois,
                              int64_t output_size);

// The official test_cfg of the RCNN stage and the box head's delta stds.
inline constexpr double kRcnnScoreThreshold = 0.05;
inline constexpr double kRcnnIouThreshold = 0.5;
inline constexpr int64_t kRcnnMaxPerImage = 100;
inline constexpr std::array<float, 4> kRcnnStds = {0.1f, 0.1f, 0.2f, 0.2f};

// Detections of one image: (k, 4) float32 boxes, (k) float32 scores (descending), (k) int64 labels.
struct Detections {
  at::Tensor boxes;
  at::Tensor scores;
  at::Tensor labels;
};

// mmdet's multiclass_nms: boxes (n, 4C) (class c in columns 4c..4c+3), scores (n, C + 1) with the
// background last. Keeps (box, class) pairs with score > score_threshold (strictly, compared in
// float32), runs class-aware batched NMS (suppress IoU > iou_threshold) and keeps the first
// max_num (all when max_num <= 0). The candidates are ordered roi-major (index = i * C + c).
Detections MulticlassNms(const at::Tensor& boxes, const at::Tensor& scores, double score_threshold,
                         double iou_threshold, int64_t max_num);

// BBoxHead.get_bboxes(rescale=True) with the official test_cfg, for one image: scores =
// softmax(cls_score (k, C + 1)) with the background last; boxes = DecodeDeltas(rois (k, 4),
// bbox_pred (k, 4C), kRcnnStds) clipped to the image's unpadded (height, width), then divided by
// the scale factor (float32 [sx, sy, sx, sy]); then MulticlassNms(kRcnnScoreThreshold,
// kRcnnIouThreshold, kRcnnMaxPerImage). Boxes come back in original-image coordinates. k = 0
// gives empty results. float32 inputs on one device.
Detections RcnnPostprocess(const at::Tensor& rois, const at::Tensor& cls_score,
                           const at::Tensor& bbox_pred, int64_t image_height, int64_t image_width,
                           float scale_x, float scale_y);

}  // namespace iis::models::detection
