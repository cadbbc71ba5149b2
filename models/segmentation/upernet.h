// UperNet on the InternImage backbone: the official upernet_internimage_{t,s,b}_512_160k_ade20k and
// upernet_internimage_{l,xl}_640_160k_ade20k models (mmsegmentation 0.x EncoderDecoder, 'whole'
// test mode), inference only.
//
// The module tree reproduces mmsegmentation's names and order (backbone., decode_head.), so the
// official checkpoints load unchanged; their auxiliary_head.* entries (the training-only FCN head)
// are ignored (CheckpointRules). Inference follows docs/detection-segmentation.md section F:
// UPerHead (PPM with scales 1, 2, 3, 6; lateral 1x1 convs; top-down bilinear sums; 3x3 FPN convs;
// concat; fpn_bottleneck; conv_seg) with every ConvModule's eval-mode BatchNorm folded into its
// convolution, logits at 1/4 of the input, then two successive bilinear resizes
// (align_corners=False): to the network input size, crop to the image, to the original size;
// argmax over the 150 classes.
//
// Lifecycle: construct -> LoadWeights(network(), path, CheckpointRules()) or RandomWeights ->
// Prepare(RunOptions) -> Logits / Segment any number of times (thread-safe after Prepare).
#pragma once

#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "models/backbone/internimage.h"
#include "models/cpu/internimage_cpu_plan.h"
#include "models/dense_batch.h"
#include "models/layers.h"
#include "models/registry.h"
#include "models/run_options.h"
#include "models/weights.h"

namespace iis::models::segmentation {

// PPM pooling sizes of the official UPerHead.
inline constexpr int64_t kPoolScales[] = {1, 2, 3, 6};

// decode_head: mmseg UPerHead(in_channels, channels, num_classes), registered in mmseg's order:
// conv_seg, psp_modules, bottleneck, lateral_convs, fpn_convs, fpn_bottleneck.
class UperHead : public torch::nn::Module {
 public:
  UperHead(const std::vector<int64_t>& in_channels, int64_t channels, int64_t num_classes);
  std::shared_ptr<Conv2d> conv_seg;                        // 1x1 with bias
  std::vector<std::shared_ptr<ConvModule>> psp_modules;    // psp_modules.i.1 (1x1, BN, ReLU)
  std::shared_ptr<ConvModule> bottleneck;                  // 3x3 on [x, ppm1, ppm2, ppm3, ppm6]
  std::vector<std::shared_ptr<ConvModule>> lateral_convs;  // 1x1 for levels 0..2
  std::vector<std::shared_ptr<ConvModule>> fpn_convs;      // 3x3 for levels 0..2
  std::shared_ptr<ConvModule> fpn_bottleneck;              // 3x3 on the 4 concatenated levels
};

// The whole parameter tree, in checkpoint order.
class UperNetNetwork : public torch::nn::Module {
 public:
  UperNetNetwork(const models::backbone::InternImageConfig& backbone_config, int64_t num_classes);
  std::shared_ptr<models::backbone::InternImage> backbone;
  std::shared_ptr<UperHead> decode_head;
};

// What Segment returns besides the label maps.
struct SegmentationOptions {
  // Also return each image's logits at its network input size.
  bool return_logits = false;
};

// The result for one image, on the CPU.
struct ImageSegmentation {
  // (original_height, original_width) uint8 class indices (0..149, ADE20K order; 0 is "wall").
  at::Tensor label_map;
  // (150, height, width) float32 logits at the network input size (after the first resize and the
  // crop); undefined unless requested.
  at::Tensor logits;
};

// The UPerHead forward pass with the BN-folded convolutions of a prepared model; exposed so tests
// can compare it with a plain ATen computation from the module's parameters.
class UperHeadPlan {
 public:
  UperHeadPlan(const UperHead& head, at::Device device, at::ScalarType dtype);
  // levels: the four backbone outputs (N, C_i, H/4/2^i, W/4/2^i) in the run dtype/device. Returns
  // (N, num_classes, H/4, W/4) logits in the run dtype.
  at::Tensor Forward(const std::vector<at::Tensor>& levels) const;

 private:
  std::vector<FoldedConv> psp_, lateral_, fpn_;
  FoldedConv bottleneck_, fpn_bottleneck_, conv_seg_;
  at::MemoryFormat format_;
};

// mmseg's whole-inference mapping for one image: resizes `logits` (C, h4, w4) bilinearly
// (align_corners=False) to (input_height, input_width), crops the top-left height x width, resizes
// that to (original_height, original_width) and returns the argmax over C as uint8 (first index on
// ties), processing a few channels at a time so that the full-resolution logits are never held at
// once. C must be <= 256. When `input_logits` is not null it receives the cropped (C, height,
// width) float32 logits. Throws c10::Error for bad sizes. Thread-safe.
at::Tensor LogitsToLabelMap(const at::Tensor& logits, int64_t input_height, int64_t input_width,
                            const DenseImageMeta& meta, at::Tensor* input_logits = nullptr);

class UperNet {
 public:
  // Throws std::invalid_argument when `arch` is not a segmentation architecture.
  explicit UperNet(const Architecture& arch);
  ~UperNet();

  const Architecture& arch() const { return arch_; }
  UperNetNetwork& network() { return *network_; }
  // How official checkpoints map onto network(): auxiliary_head.* is skipped.
  static LoadRules CheckpointRules();

  // Moves the weights to options.device/dtype, folds the BatchNorms and builds the fast CPU
  // backbone when applicable. Throws c10::Error for half precision on the CPU.
  void Prepare(const RunOptions& options);

  // batch: (N, 3, H, W) normalised float32 images (any device), H and W multiples of 32.
  // Returns the (N, num_classes, H/4, W/4) float32 logits of decode_head on the run device.
  at::Tensor Logits(const at::Tensor& batch, DenseStageTimes* times = nullptr) const;

  // Runs Logits on a padded batch (CollateImages) and maps every image's logits to its original
  // size (LogitsToLabelMap). Throws c10::Error for bad shapes or metas, or before Prepare().
  std::vector<ImageSegmentation> Segment(const at::Tensor& batch,
                                         const std::vector<DenseImageMeta>& metas,
                                         const SegmentationOptions& options = {},
                                         DenseStageTimes* times = nullptr) const;

 private:
  Architecture arch_;
  std::shared_ptr<UperNetNetwork> network_;
  RunOptions options_;
  std::unique_ptr<UperHeadPlan> head_plan_;
  std::unique_ptr<cpu::InternImageCpuPlan> backbone_plan_;
};

}  // namespace iis::models::segmentation
