#include "models/detection/box_ops.h"

#include <ATen/ATen.h>

#include <cmath>

#include "ops/nms.h"
#include "ops/roi_align.h"

namespace iis::models::detection {
namespace {

// SingleRoIExtractor's finest_scale: boxes of scale < 2 * 56 go to the finest level.
constexpr float kFinestScale = 56.0f;

void CheckBoxes(const at::Tensor& t, const char* who, const char* name, int64_t columns) {
  TORCH_CHECK(t.defined() && t.dim() == 2 && t.size(1) == columns, who, ": ", name, " must be (n, ",
              columns, "), got ", t.defined() ? t.sizes() : at::IntArrayRef{});
  TORCH_CHECK(t.scalar_type() == at::kFloat, who, ": ", name, " must be float32, got ",
              t.scalar_type());
}

}  // namespace

at::Tensor BaseAnchors(int64_t stride) {
  TORCH_CHECK(stride > 0, "BaseAnchors: stride must be positive, got ", stride);
  // mmdet: h_ratios = sqrt(ratios), w_ratios = 1 / h_ratios, ws = base * w_ratios * scale,
  // anchors = (-0.5 ws, -0.5 hs, 0.5 ws, 0.5 hs), all float32.
  const at::Tensor ratios = at::tensor({0.5f, 1.0f, 2.0f});
  const at::Tensor h_ratios = at::sqrt(ratios);
  const at::Tensor w_ratios = at::reciprocal(h_ratios);
  const double base = static_cast<double>(stride);
  const at::Tensor ws = w_ratios * base * 8.0;
  const at::Tensor hs = h_ratios * base * 8.0;
  return at::stack({ws * -0.5, hs * -0.5, ws * 0.5, hs * 0.5}, 1);
}

at::Tensor GridAnchors(int64_t stride, int64_t height, int64_t width) {
  TORCH_CHECK(height >= 0 && width >= 0, "GridAnchors: feature map size must be >= 0, got ", height,
              "x", width);
  const at::Tensor base = BaseAnchors(stride);
  const at::Tensor sx = at::arange(width, at::kFloat) * static_cast<double>(stride);
  const at::Tensor sy = at::arange(height, at::kFloat) * static_cast<double>(stride);
  const at::Tensor xx = sx.repeat({height});
  const at::Tensor yy = sy.view({-1, 1}).repeat({1, width}).view({-1});
  const at::Tensor shifts = at::stack({xx, yy, xx, yy}, 1);  // (h * w, 4)
  return (base.unsqueeze(0) + shifts.unsqueeze(1)).view({-1, 4});
}

at::Tensor DecodeDeltas(const at::Tensor& rois, const at::Tensor& deltas,
                        const std::array<float, 4>& stds, int64_t max_height, int64_t max_width) {
  CheckBoxes(rois, "DecodeDeltas", "rois", 4);
  TORCH_CHECK(deltas.dim() == 2 && deltas.size(0) == rois.size(0) && deltas.size(1) > 0 &&
                  deltas.size(1) % 4 == 0,
              "DecodeDeltas: deltas must be (", rois.size(0), ", 4k), got ", deltas.sizes());
  TORCH_CHECK(deltas.scalar_type() == at::kFloat && deltas.device() == rois.device(),
              "DecodeDeltas: deltas must be float32 on ", rois.device(), ", got ",
              deltas.scalar_type(), " on ", deltas.device());
  TORCH_CHECK(max_height > 0 && max_width > 0, "DecodeDeltas: max size must be positive, got ",
              max_height, "x", max_width);
  const int64_t n = rois.size(0), k = deltas.size(1) / 4;
  if (n == 0) return deltas.clone();
  const at::Tensor std_t =
      at::tensor({stds[0], stds[1], stds[2], stds[3]}).to(rois.device()).view({1, 4});
  // Means are 0 in every official config; adding them would not change any value.
  const at::Tensor d = deltas.reshape({-1, 4}) * std_t;
  const at::Tensor dxy = d.slice(1, 0, 2);
  const at::Tensor r = rois.repeat({1, k}).reshape({-1, 4});
  const at::Tensor pxy = (r.slice(1, 0, 2) + r.slice(1, 2, 4)) * 0.5;
  const at::Tensor pwh = r.slice(1, 2, 4) - r.slice(1, 0, 2);
  const at::Tensor dxy_wh = pwh * dxy;
  const double max_ratio = std::abs(std::log(16.0 / 1000.0));
  const at::Tensor dwh = d.slice(1, 2, 4).clamp(-max_ratio, max_ratio);
  const at::Tensor gxy = pxy + dxy_wh;
  const at::Tensor gwh = pwh * dwh.exp();
  const at::Tensor x1y1 = gxy - gwh * 0.5;
  const at::Tensor x2y2 = gxy + gwh * 0.5;
  at::Tensor boxes = at::cat({x1y1, x2y2}, -1);
  boxes.slice(1, 0, 4, 2).clamp_(0, static_cast<double>(max_width));
  boxes.slice(1, 1, 4, 2).clamp_(0, static_cast<double>(max_height));
  return boxes.reshape({n, -1});
}

at::Tensor RpnProposals(const std::vector<at::Tensor>& cls, const std::vector<at::Tensor>& reg,
                        const std::vector<at::Tensor>& anchors, int64_t image_height,
                        int64_t image_width, const RpnSettings& settings) {
  TORCH_CHECK(!cls.empty() && cls.size() == reg.size() && cls.size() == anchors.size(),
              "RpnProposals: need one cls, reg and anchors tensor per level, got ", cls.size(),
              ", ", reg.size(), ", ", anchors.size());
  std::vector<at::Tensor> all_scores, all_deltas, all_anchors, all_levels;
  for (size_t l = 0; l < cls.size(); ++l) {
    TORCH_CHECK(cls[l].dim() == 3 && reg[l].dim() == 3 && reg[l].size(0) == 4 * cls[l].size(0) &&
                    cls[l].size(1) == reg[l].size(1) && cls[l].size(2) == reg[l].size(2),
                "RpnProposals: level ", l, ": cls (A, h, w) and reg (4A, h, w) expected, got ",
                cls[l].sizes(), " and ", reg[l].sizes());
    at::Tensor scores = cls[l].permute({1, 2, 0}).reshape({-1}).sigmoid();
    at::Tensor deltas = reg[l].permute({1, 2, 0}).reshape({-1, 4});
    at::Tensor level_anchors = anchors[l];
    TORCH_CHECK(level_anchors.dim() == 2 && level_anchors.size(0) == scores.size(0) &&
                    level_anchors.size(1) == 4,
                "RpnProposals: level ", l, ": anchors must be (", scores.size(0), ", 4), got ",
                level_anchors.sizes());
    if (settings.nms_pre > 0 && settings.nms_pre < scores.size(0)) {
      auto [ranked, order] = at::sort(scores, /*stable=*/true, /*dim=*/0, /*descending=*/true);
      const at::Tensor top = order.slice(0, 0, settings.nms_pre);
      scores = ranked.slice(0, 0, settings.nms_pre);
      deltas = deltas.index_select(0, top);
      level_anchors = level_anchors.index_select(0, top);
    }
    all_levels.push_back(
        at::full({scores.size(0)}, static_cast<int64_t>(l), scores.options().dtype(at::kLong)));
    all_scores.push_back(scores);
    all_deltas.push_back(deltas);
    all_anchors.push_back(level_anchors);
  }
  at::Tensor scores = at::cat(all_scores);
  at::Tensor levels = at::cat(all_levels);
  at::Tensor proposals = DecodeDeltas(at::cat(all_anchors), at::cat(all_deltas), {1, 1, 1, 1},
                                      image_height, image_width);
  const at::Tensor w = proposals.select(1, 2) - proposals.select(1, 0);
  const at::Tensor h = proposals.select(1, 3) - proposals.select(1, 1);
  const at::Tensor valid = (w > 0) & (h > 0);
  if (!valid.all().item<bool>()) {
    proposals = proposals.index({valid});
    scores = scores.index({valid});
    levels = levels.index({valid});
  }
  if (proposals.size(0) == 0) return proposals.new_zeros({0, 5});
  at::Tensor keep = ops::BatchedNms(proposals, scores, levels, settings.iou_threshold);
  keep = keep.slice(0, 0, settings.max_per_image);
  return at::cat({proposals.index_select(0, keep), scores.index_select(0, keep).unsqueeze(1)}, 1);
}

at::Tensor MapRoiLevels(const at::Tensor& boxes, int64_t num_levels) {
  CheckBoxes(boxes, "MapRoiLevels", "boxes", 4);
  TORCH_CHECK(num_levels >= 1, "MapRoiLevels: num_levels must be >= 1, got ", num_levels);
  const at::Tensor scale = at::sqrt((boxes.select(1, 3) - boxes.select(1, 1)) *
                                    (boxes.select(1, 2) - boxes.select(1, 0)));
  const at::Tensor levels = at::floor(at::log2(scale / kFinestScale + 1e-6));
  return levels.clamp(0, static_cast<double>(num_levels - 1)).to(at::kLong);
}

at::Tensor ExtractRoiFeatures(const std::vector<at::Tensor>& feats, const at::Tensor& rois,
                              int64_t output_size) {
  TORCH_CHECK(feats.size() == kRoiStrides.size(), "ExtractRoiFeatures: expected ",
              kRoiStrides.size(), " feature levels, got ", feats.size());
  CheckBoxes(rois, "ExtractRoiFeatures", "rois", 5);
  const at::Tensor& f0 = feats[0];
  at::Tensor out = at::zeros({rois.size(0), f0.size(1), output_size, output_size}, f0.options());
  if (rois.size(0) == 0) return out;
  const at::Tensor levels = MapRoiLevels(rois.slice(1, 1, 5), static_cast<int64_t>(feats.size()));
  for (size_t l = 0; l < feats.size(); ++l) {
    const at::Tensor inds = (levels == static_cast<int64_t>(l)).nonzero().view({-1});
    if (inds.numel() == 0) continue;
    const at::Tensor pooled =
        ops::RoiAlign(feats[l], rois.index_select(0, inds),
                      1.0 / static_cast<double>(kRoiStrides[l]), output_size, output_size,
                      /*sampling_ratio=*/0, /*aligned=*/true);
    out.index_copy_(0, inds, pooled);
  }
  return out;
}

Detections MulticlassNms(const at::Tensor& boxes, const at::Tensor& scores, double score_threshold,
                         double iou_threshold, int64_t max_num) {
  TORCH_CHECK(scores.dim() == 2 && scores.size(1) >= 2 && scores.scalar_type() == at::kFloat,
              "MulticlassNms: scores must be float32 (n, C + 1), got ", scores.sizes(), " ",
              scores.scalar_type());
  const int64_t n = scores.size(0), num_classes = scores.size(1) - 1;
  CheckBoxes(boxes, "MulticlassNms", "boxes", 4 * num_classes);
  TORCH_CHECK(boxes.size(0) == n, "MulticlassNms: boxes has ", boxes.size(0), " rows, scores ", n);
  at::Tensor flat_boxes = boxes.reshape({-1, 4});
  at::Tensor flat_scores = scores.slice(1, 0, num_classes).reshape({-1});
  at::Tensor labels = at::arange(num_classes, scores.options().dtype(at::kLong))
                          .view({1, -1})
                          .expand({n, num_classes})
                          .reshape({-1});
  const at::Tensor inds = (flat_scores > score_threshold).nonzero().view({-1});
  flat_boxes = flat_boxes.index_select(0, inds);
  flat_scores = flat_scores.index_select(0, inds);
  labels = labels.index_select(0, inds);
  if (flat_boxes.size(0) == 0) return {flat_boxes, flat_scores, labels};
  at::Tensor keep = ops::BatchedNms(flat_boxes, flat_scores, labels, iou_threshold);
  if (max_num > 0) keep = keep.slice(0, 0, max_num);
  return {flat_boxes.index_select(0, keep), flat_scores.index_select(0, keep),
          labels.index_select(0, keep)};
}

Detections RcnnPostprocess(const at::Tensor& rois, const at::Tensor& cls_score,
                           const at::Tensor& bbox_pred, int64_t image_height, int64_t image_width,
                           float scale_x, float scale_y) {
  CheckBoxes(rois, "RcnnPostprocess", "rois", 4);
  const int64_t k = rois.size(0);
  TORCH_CHECK(cls_score.dim() == 2 && cls_score.size(0) == k && cls_score.size(1) >= 2,
              "RcnnPostprocess: cls_score must be (", k, ", C + 1), got ", cls_score.sizes());
  const int64_t num_classes = cls_score.size(1) - 1;
  TORCH_CHECK(
      bbox_pred.dim() == 2 && bbox_pred.size(0) == k && bbox_pred.size(1) == 4 * num_classes,
      "RcnnPostprocess: bbox_pred must be (", k, ", ", 4 * num_classes, "), got ",
      bbox_pred.sizes());
  if (k == 0) {
    const auto f = rois.options();
    return {at::zeros({0, 4}, f), at::zeros({0}, f), at::zeros({0}, f.dtype(at::kLong))};
  }
  const at::Tensor scores = at::softmax(cls_score, -1);
  const at::Tensor scale = at::tensor({scale_x, scale_y, scale_x, scale_y}).to(rois.device());
  at::Tensor boxes = DecodeDeltas(rois, bbox_pred, kRcnnStds, image_height, image_width);
  boxes = (boxes.view({k, -1, 4}) / scale).view({k, -1});
  return MulticlassNms(boxes, scores, kRcnnScoreThreshold, kRcnnIouThreshold, kRcnnMaxPerImage);
}

}  // namespace iis::models::detection
