// Mask R-CNN with an FPN neck on the InternImage backbone: the official
// mask_rcnn_internimage_{t,s,b}_fpn_{1x,3x}_coco models (mmdetection 2.x), inference only.
//
// The module tree reproduces mmdetection's names and order (backbone., neck., rpn_head.,
// roi_head.bbox_head., roi_head.mask_head.), so the official checkpoints ('state_dict', 'meta'
// ignored) load unchanged; checked against tests/fixtures/keys/ by the tests.
// Inference follows docs/detection-segmentation.md (sections C-E) step by step: FPN with a
// max-pool P6, RPN (per-level top 1000, batched NMS by level at 0.7, 1000 proposals), RoIAlign
// 7x7 / 14x14 by the level rule, Shared2FC box head, class-specific decode and clip, rescale by
// the scale factor, multi-class NMS (score > 0.05, IoU 0.5, top 100), FCN mask head.
//
// Lifecycle: construct (weights uninitialised) -> LoadWeights / RandomWeights on network() ->
// Prepare(RunOptions) -> Detect any number of times. Detect is thread-safe after Prepare; nothing
// else is.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "models/backbone/internimage.h"
#include "models/cpu/internimage_cpu_plan.h"
#include "models/dense_batch.h"
#include "models/detection/box_ops.h"
#include "models/layers.h"
#include "models/registry.h"
#include "models/run_options.h"

namespace iis::models::detection {

// Side length of the predicted masks (the FCN mask head's 14x14 RoI features, upsampled 2x).
inline constexpr int64_t kMaskSize = 28;
// Binary masks keep probabilities >= this (mask_thr_binary).
inline constexpr float kMaskThreshold = 0.5f;

// neck: mmdet FPN(in_channels, 256, num_outs=5), no norms or activations.
class FpnNeck : public torch::nn::Module {
 public:
  FpnNeck(const std::vector<int64_t>& in_channels, int64_t out_channels);
  std::vector<std::shared_ptr<ConvModule>> lateral_convs;  // 1x1, with bias
  std::vector<std::shared_ptr<ConvModule>> fpn_convs;      // 3x3, with bias
};

// rpn_head: one shared 3x3 conv (+ReLU), then 1x1 convs for 3 objectness logits and 12 deltas.
class RpnHead : public torch::nn::Module {
 public:
  explicit RpnHead(int64_t channels);
  std::shared_ptr<Conv2d> rpn_conv, rpn_cls, rpn_reg;
};

// roi_head.bbox_head: Shared2FCBBoxHead (12544 -> 1024 -> 1024, then 81 scores and 320 deltas).
// Registered in mmdet's order: fc_cls, fc_reg, shared_fcs.
class BBoxHead : public torch::nn::Module {
 public:
  BBoxHead(int64_t in_channels, int64_t roi_size, int64_t fc_channels, int64_t num_classes);
  std::shared_ptr<Linear> fc_cls, fc_reg;
  std::vector<std::shared_ptr<Linear>> shared_fcs;
};

// roi_head.mask_head: FCNMaskHead, 4 x (3x3 conv + ReLU), 2x2 stride-2 deconv + ReLU, 1x1 logits.
class MaskHead : public torch::nn::Module {
 public:
  MaskHead(int64_t channels, int64_t num_classes);
  std::vector<std::shared_ptr<ConvModule>> convs;
  std::shared_ptr<ConvTranspose2d> upsample;
  std::shared_ptr<Conv2d> conv_logits;
};

// roi_head: the box and mask heads (the RoI extractors have no parameters).
class RoiHead : public torch::nn::Module {
 public:
  explicit RoiHead(int64_t num_classes);
  std::shared_ptr<BBoxHead> bbox_head;
  std::shared_ptr<MaskHead> mask_head;
};

// The whole parameter tree, in checkpoint order.
class MaskRcnnNetwork : public torch::nn::Module {
 public:
  MaskRcnnNetwork(const models::backbone::InternImageConfig& backbone_config, int64_t num_classes);
  std::shared_ptr<models::backbone::InternImage> backbone;
  std::shared_ptr<FpnNeck> neck;
  std::shared_ptr<RpnHead> rpn_head;
  std::shared_ptr<RoiHead> roi_head;
};

// What Detect returns besides the official pipeline.
struct DetectionOptions {
  // Detections must score strictly above this; at least the model's own 0.05 (larger values drop
  // detections from the official result, they never change the others).
  double score_threshold = kRcnnScoreThreshold;
  // Keep at most this many detections per image (1..100), best first.
  int64_t max_detections = kRcnnMaxPerImage;
  // Run the mask head and return each detection's 28x28 probabilities.
  bool masks = true;
};

// The detections of one image, on the CPU, best score first.
struct ImageDetections {
  at::Tensor boxes;   // (k, 4) float32 [x1, y1, x2, y2] in original-image pixels
  at::Tensor scores;  // (k) float32
  at::Tensor labels;  // (k) int64, 0-based COCO label order (Architecture::class_names)
  // (k, 28, 28) float32 sigmoid probabilities of each detection's class over its box, to be pasted
  // with MmdetPasteBox + PasteMask (models/detection/mask_paste.h); undefined without masks.
  at::Tensor mask_probs;
};

class MaskRcnn {
 public:
  // Throws std::invalid_argument when `arch` is not a detection architecture.
  explicit MaskRcnn(const Architecture& arch);
  ~MaskRcnn();

  const Architecture& arch() const { return arch_; }
  // The module whose parameters checkpoints fill (official key names, no ignored prefixes).
  MaskRcnnNetwork& network() { return *network_; }

  // Moves the weights to options.device/dtype and builds the run plan (fp32 on the CPU: the fused
  // backbone plan and channels-last convolutions; elsewhere the ATen reference backbone). Throws
  // c10::Error for half precision on the CPU.
  void Prepare(const RunOptions& options);

  // Runs the official inference on a padded batch. batch: (N, 3, H, W) float32 normalised images
  // (any device), H and W multiples of 32, image i in the top-left metas[i].height x
  // metas[i].width corner and zeros elsewhere (CollateImages). RPN and RCNN boxes are clipped to
  // each image's own size; results are mapped to its original size by its scale factor. Fills
  // `times` when not null. Throws c10::Error for bad arguments (shapes, metas, options) or before
  // Prepare().
  std::vector<ImageDetections> Detect(const at::Tensor& batch,
                                      const std::vector<DenseImageMeta>& metas,
                                      const DetectionOptions& options = {},
                                      DenseStageTimes* times = nullptr) const;

 private:
  struct Plan;
  std::vector<at::Tensor> Backbone(const at::Tensor& x) const;
  // FPN of one image: feats are its four backbone levels (1, C_i, h_i, w_i); returns P2..P6.
  std::vector<at::Tensor> Neck(const std::vector<at::Tensor>& feats) const;
  // RPN, box head, NMS and mask head of one image on its FPN levels.
  ImageDetections Heads(std::vector<at::Tensor> levels, const DenseImageMeta& meta,
                        const DetectionOptions& options) const;

  Architecture arch_;
  std::shared_ptr<MaskRcnnNetwork> network_;
  RunOptions options_;
  std::unique_ptr<Plan> plan_;
  std::unique_ptr<cpu::InternImageCpuPlan> backbone_plan_;
};

}  // namespace iis::models::detection
