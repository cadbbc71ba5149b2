// The InternImage backbone and its classification heads as LibTorch modules.
//
// The module tree mirrors the official implementation (OpenGVLab/InternImage,
// classification/models/intern_image.py) so that named_parameters()/named_buffers() produce exactly
// the official state-dict keys, in the official order: official checkpoints load unchanged
// (checked against tests/fixtures/keys/internimage_*.tsv by internimage_test).
//
// forward functions here are the readable ATen reference (eval mode: drop-path and dropout are the
// identity). The fast CPU path lives in models/cpu/internimage_cpu_plan.h and is tested against
// these. Layouts: the stem takes NCHW; blocks work channels-last (N, H, W, C); level outputs are
// returned NCHW as the official backbone returns them.
// Thread-safety: forward is safe to call concurrently once weights are loaded.
#pragma once

#include <memory>
#include <vector>

#include <torch/nn/module.h>

#include "models/backbone/internimage_config.h"
#include "models/layers.h"

namespace iis::models::backbone {

// The deformable-convolution mixer of one block (official `DCNv3` module, named `dcn`).
class Dcnv3Mixer : public torch::nn::Module {
 public:
  Dcnv3Mixer(int64_t channels, int64_t groups, int64_t dw_kernel_size, double offset_scale,
             bool center_feature_scale, bool remove_center);
  // x: (N, H, W, C) -> (N, H, W, C).
  at::Tensor forward(const at::Tensor& x) const;

  int64_t channels;
  int64_t groups;
  int64_t kernel_points;  // K = 9 - remove_center
  double offset_scale;
  bool remove_center;
  bool center_feature_scale;
  at::Tensor center_feature_scale_proj_weight;  // (G, C) when center_feature_scale
  at::Tensor center_feature_scale_proj_bias;    // (G)
  std::shared_ptr<Conv2d> dw_conv;              // dw_conv.0
  std::shared_ptr<LayerNorm> dw_norm;           // dw_conv.1.1 (eps 1e-6), then GELU
  std::shared_ptr<Linear> offset, mask, input_proj, output_proj;
};

// One InternImageLayer (official name: levels.i.blocks.j).
class InternImageLayer : public torch::nn::Module {
 public:
  InternImageLayer(const InternImageConfig& config, int level);
  at::Tensor forward(const at::Tensor& x) const;  // (N, H, W, C)

  bool layer_scale;
  bool post_norm;
  bool res_post_norm;
  at::Tensor gamma1, gamma2;  // (C) when layer_scale
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<Dcnv3Mixer> dcn;
  std::shared_ptr<Linear> fc1, fc2;                           // mlp.fc1 / mlp.fc2 (GELU between)
  std::shared_ptr<LayerNorm> res_post_norm1, res_post_norm2;  // when res_post_norm
};

// One level (official InternImageBlock, levels.i): blocks, optional post norms, optional level
// norm, optional downsample.
class InternImageLevel : public torch::nn::Module {
 public:
  InternImageLevel(const InternImageConfig& config, int level);
  // x: (N, H, W, C). Returns {level output (after the level norm, before downsampling, NHWC),
  // input of the next level (downsampled, NHWC; undefined for the last level)}.
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& x) const;

  std::vector<std::shared_ptr<InternImageLayer>> blocks;
  std::vector<int> post_norm_block_ids;
  std::vector<std::shared_ptr<LayerNorm>> post_norms;
  std::shared_ptr<LayerNorm> norm;             // levels.i.norm.0, when config.HasLevelNorm()
  std::shared_ptr<Conv2d> downsample_conv;     // levels.i.downsample.conv (no bias)
  std::shared_ptr<LayerNorm> downsample_norm;  // levels.i.downsample.norm.1
};

// patch_embed: two stride-2 3x3 convs with LayerNorm (+GELU between). NCHW in, NHWC out.
class StemLayer : public torch::nn::Module {
 public:
  StemLayer(int64_t in_channels, int64_t out_channels);
  at::Tensor forward(const at::Tensor& x) const;

  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<LayerNorm> norm1, norm2;  // patch_embed.norm1.1 / norm2.1
};

// The attention-pooling head of InternImage-H/G (official AttentionPoolingBlock, `clip_projector`).
class AttentionPooling : public torch::nn::Module {
 public:
  AttentionPooling(int64_t dim, int64_t num_heads, int64_t out_dim);
  // x: (N, L, dim) -> (N, out_dim).
  at::Tensor forward(const at::Tensor& x) const;

  int64_t num_heads;
  std::shared_ptr<LayerNorm> norm1_q, norm1_k, norm1_v;
  at::Tensor q_bias, k_bias, v_bias;      // cross_dcn.{q,k,v}_bias
  std::shared_ptr<Linear> q, k, v, proj;  // cross_dcn.{q,k,v} (no bias), cross_dcn.proj
};

// The InternImage backbone (patch_embed + 4 levels), optionally with the ImageNet classifier
// (conv_head + head for T..XL; dcnv3_head_x4/x3 + clip_projector + fc_norm + head for H/G).
class InternImage : public torch::nn::Module {
 public:
  // num_classes 0 builds the backbone only (the detection/segmentation layout, no classifier
  // keys). Throws std::invalid_argument for an invalid config.
  InternImage(const InternImageConfig& config, int64_t num_classes);

  // x: (N, 3, H, W) normalised image. Returns the four level outputs, NCHW, at strides 4..32.
  std::vector<at::Tensor> ForwardLevels(const at::Tensor& x) const;
  // x: (N, 3, H, W). Returns (N, num_classes) logits. Requires num_classes > 0.
  at::Tensor ForwardLogits(const at::Tensor& x) const;
  // Returns the classifier logits from the level outputs of ForwardLevels.
  at::Tensor HeadLogits(const std::vector<at::Tensor>& levels) const;

  const InternImageConfig& config() const { return config_; }
  int64_t num_classes() const { return num_classes_; }

  std::shared_ptr<StemLayer> patch_embed;
  std::vector<std::shared_ptr<InternImageLevel>> levels;
  // T..XL classifier.
  std::shared_ptr<Conv2d> conv_head_conv;     // conv_head.0 (1x1, no bias)
  std::shared_ptr<BatchNorm2d> conv_head_bn;  // conv_head.1.0, then GELU, avgpool
  // H/G classifier.
  std::shared_ptr<Conv2d> dcnv3_head_x4;  // dcnv3_head_x4.0, then PixelShuffle(2)
  std::shared_ptr<Conv2d> dcnv3_head_x3;
  std::shared_ptr<AttentionPooling> clip_projector;
  std::shared_ptr<LayerNorm> fc_norm;  // fc_norm.0
  std::shared_ptr<Linear> head;

 private:
  InternImageConfig config_;
  int64_t num_classes_;
};

}  // namespace iis::models::backbone
