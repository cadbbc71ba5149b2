#include "models/backbone/internimage.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "ops/dcnv3.h"

namespace iis::models::backbone {
namespace {

// NCHW <-> NHWC views (no copy; the official code permutes the same way).
at::Tensor ToChannelsLast(const at::Tensor& x) { return x.permute({0, 2, 3, 1}); }
at::Tensor ToChannelsFirst(const at::Tensor& x) { return x.permute({0, 3, 1, 2}); }

at::Tensor Gelu(const at::Tensor& x) { return at::gelu(x); }  // exact erf form, as nn.GELU()

}  // namespace

// ---------------------------------------------------------------------------------------------
Dcnv3Mixer::Dcnv3Mixer(int64_t channels_, int64_t groups_, int64_t dw_kernel_size,
                       double offset_scale_, bool center_feature_scale_, bool remove_center_)
    : channels(channels_),
      groups(groups_),
      kernel_points(9 - (remove_center_ ? 1 : 0)),
      offset_scale(offset_scale_),
      remove_center(remove_center_),
      center_feature_scale(center_feature_scale_) {
  // Own parameters first: the official state dict lists them before the submodules.
  if (center_feature_scale) {
    center_feature_scale_proj_weight =
        register_parameter("center_feature_scale_proj_weight",
                           at::zeros({groups, channels}, ParameterOptions()), false);
    center_feature_scale_proj_bias = register_parameter(
        "center_feature_scale_proj_bias", at::zeros({groups}, ParameterOptions()), false);
  }
  auto dw = register_module("dw_conv", std::make_shared<torch::nn::Module>());
  dw_conv = dw->register_module(
      "0", std::make_shared<Conv2d>(channels, channels, dw_kernel_size, 1, (dw_kernel_size - 1) / 2,
                                    /*groups=*/channels));
  dw_norm = RegisterIndexed(*dw, "1", 1, std::make_shared<LayerNorm>(channels, 1e-6));
  offset =
      register_module("offset", std::make_shared<Linear>(channels, groups * kernel_points * 2));
  mask = register_module("mask", std::make_shared<Linear>(channels, groups * kernel_points));
  input_proj = register_module("input_proj", std::make_shared<Linear>(channels, channels));
  output_proj = register_module("output_proj", std::make_shared<Linear>(channels, channels));
}

at::Tensor Dcnv3Mixer::forward(const at::Tensor& x) const {
  const at::Tensor value = input_proj->forward(x).contiguous();
  const at::Tensor x1 =
      Gelu(dw_norm->forward(ToChannelsLast(dw_conv->forward(ToChannelsFirst(x))))).contiguous();
  const at::Tensor off = offset->forward(x1).contiguous();
  const at::Tensor mask_logits = mask->forward(x1).contiguous();
  ops::Dcnv3Params p;
  p.group = groups;
  p.group_channels = channels / groups;
  p.offset_scale = offset_scale;
  p.remove_center = remove_center;
  at::Tensor y = ops::Dcnv3Softmax(value, off, mask_logits, p);
  if (center_feature_scale) {
    // s = sigmoid(x1 W^T + b) per group, broadcast over the group's channels.
    at::Tensor s = at::sigmoid(
        at::linear(x1, center_feature_scale_proj_weight, center_feature_scale_proj_bias));
    s = s.repeat_interleave(channels / groups, /*dim=*/-1);
    y = y * (1 - s) + value * s;
  }
  return output_proj->forward(y);
}

// ---------------------------------------------------------------------------------------------
InternImageLayer::InternImageLayer(const InternImageConfig& c, int level)
    : layer_scale(c.layer_scale), post_norm(c.post_norm), res_post_norm(c.res_post_norm) {
  const int64_t ch = c.LevelChannels(level);
  if (layer_scale) {
    gamma1 = register_parameter("gamma1", at::ones({ch}, ParameterOptions()), false);
    gamma2 = register_parameter("gamma2", at::ones({ch}, ParameterOptions()), false);
  }
  norm1 = RegisterIndexed(*this, "norm1", 0, std::make_shared<LayerNorm>(ch, 1e-6));
  dcn = register_module(
      "dcn", std::make_shared<Dcnv3Mixer>(ch, c.groups[level], c.dw_kernel_size, c.offset_scale,
                                          c.center_feature_scale, c.remove_center));
  norm2 = RegisterIndexed(*this, "norm2", 0, std::make_shared<LayerNorm>(ch, 1e-6));
  auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
  const auto hidden = static_cast<int64_t>(ch * c.mlp_ratio);
  fc1 = mlp->register_module("fc1", std::make_shared<Linear>(ch, hidden));
  fc2 = mlp->register_module("fc2", std::make_shared<Linear>(hidden, ch));
  if (res_post_norm) {
    res_post_norm1 =
        RegisterIndexed(*this, "res_post_norm1", 0, std::make_shared<LayerNorm>(ch, 1e-6));
    res_post_norm2 =
        RegisterIndexed(*this, "res_post_norm2", 0, std::make_shared<LayerNorm>(ch, 1e-6));
  }
}

at::Tensor InternImageLayer::forward(const at::Tensor& input) const {
  auto mlp = [this](const at::Tensor& t) { return fc2->forward(Gelu(fc1->forward(t))); };
  at::Tensor x = input;
  if (!layer_scale) {
    if (post_norm) {
      x = x + norm1->forward(dcn->forward(x));
      x = x + norm2->forward(mlp(x));
    } else if (res_post_norm) {
      x = x + res_post_norm1->forward(dcn->forward(norm1->forward(x)));
      x = x + res_post_norm2->forward(mlp(norm2->forward(x)));
    } else {
      x = x + dcn->forward(norm1->forward(x));
      x = x + mlp(norm2->forward(x));
    }
    return x;
  }
  if (post_norm) {
    x = x + gamma1 * norm1->forward(dcn->forward(x));
    x = x + gamma2 * norm2->forward(mlp(x));
  } else {
    x = x + gamma1 * dcn->forward(norm1->forward(x));
    x = x + gamma2 * mlp(norm2->forward(x));
  }
  return x;
}

// ---------------------------------------------------------------------------------------------
InternImageLevel::InternImageLevel(const InternImageConfig& c, int level) {
  const int64_t ch = c.LevelChannels(level);
  auto blocks_list = register_module("blocks", std::make_shared<torch::nn::Module>());
  for (int j = 0; j < c.depths[level]; ++j) {
    blocks.push_back(blocks_list->register_module(std::to_string(j),
                                                  std::make_shared<InternImageLayer>(c, level)));
  }
  if (c.HasLevelNorm())
    norm = RegisterIndexed(*this, "norm", 0, std::make_shared<LayerNorm>(ch, 1e-6));
  if (level == 2 && !c.level2_post_norm_block_ids.empty()) {
    post_norm_block_ids = c.level2_post_norm_block_ids;
    auto list = register_module("post_norms", std::make_shared<torch::nn::Module>());
    for (size_t i = 0; i < post_norm_block_ids.size(); ++i) {
      post_norms.push_back(
          RegisterIndexed(*list, std::to_string(i), 0, std::make_shared<LayerNorm>(ch, 1e-6)));
    }
  }
  if (level < 3) {
    auto ds = register_module("downsample", std::make_shared<torch::nn::Module>());
    downsample_conv = ds->register_module(
        "conv", std::make_shared<Conv2d>(ch, 2 * ch, 3, 2, 1, 1, /*bias=*/false));
    downsample_norm = RegisterIndexed(*ds, "norm", 1, std::make_shared<LayerNorm>(2 * ch, 1e-6));
  }
}

std::pair<at::Tensor, at::Tensor> InternImageLevel::forward(const at::Tensor& input) const {
  at::Tensor x = input;
  for (size_t j = 0; j < blocks.size(); ++j) {
    x = blocks[j]->forward(x);
    auto it =
        std::find(post_norm_block_ids.begin(), post_norm_block_ids.end(), static_cast<int>(j));
    if (it != post_norm_block_ids.end())
      x = post_norms[it - post_norm_block_ids.begin()]->forward(x);
  }
  if (norm) x = norm->forward(x);
  at::Tensor next;
  if (downsample_conv) {
    next = downsample_norm->forward(ToChannelsLast(downsample_conv->forward(ToChannelsFirst(x))));
  }
  return {x, next};
}

// ---------------------------------------------------------------------------------------------
StemLayer::StemLayer(int64_t in_channels, int64_t out_channels) {
  conv1 =
      register_module("conv1", std::make_shared<Conv2d>(in_channels, out_channels / 2, 3, 2, 1));
  norm1 = RegisterIndexed(*this, "norm1", 1, std::make_shared<LayerNorm>(out_channels / 2, 1e-6));
  conv2 =
      register_module("conv2", std::make_shared<Conv2d>(out_channels / 2, out_channels, 3, 2, 1));
  norm2 = RegisterIndexed(*this, "norm2", 1, std::make_shared<LayerNorm>(out_channels, 1e-6));
}

at::Tensor StemLayer::forward(const at::Tensor& x) const {
  at::Tensor y = conv1->forward(x);
  y = Gelu(ToChannelsFirst(norm1->forward(ToChannelsLast(y))));
  return norm2->forward(ToChannelsLast(conv2->forward(y)));
}

// ---------------------------------------------------------------------------------------------
AttentionPooling::AttentionPooling(int64_t dim, int64_t heads, int64_t out_dim) : num_heads(heads) {
  norm1_q = RegisterIndexed(*this, "norm1_q", 0, std::make_shared<LayerNorm>(dim, 1e-6));
  norm1_k = RegisterIndexed(*this, "norm1_k", 0, std::make_shared<LayerNorm>(dim, 1e-6));
  norm1_v = RegisterIndexed(*this, "norm1_v", 0, std::make_shared<LayerNorm>(dim, 1e-6));
  auto cross = register_module("cross_dcn", std::make_shared<torch::nn::Module>());
  q_bias = cross->register_parameter("q_bias", at::zeros({dim}, ParameterOptions()), false);
  k_bias = cross->register_parameter("k_bias", at::zeros({dim}, ParameterOptions()), false);
  v_bias = cross->register_parameter("v_bias", at::zeros({dim}, ParameterOptions()), false);
  q = cross->register_module("q", std::make_shared<Linear>(dim, dim, false));
  k = cross->register_module("k", std::make_shared<Linear>(dim, dim, false));
  v = cross->register_module("v", std::make_shared<Linear>(dim, dim, false));
  proj = cross->register_module("proj", std::make_shared<Linear>(dim, out_dim));
}

at::Tensor AttentionPooling::forward(const at::Tensor& x) const {
  const int64_t n = x.size(0), len = x.size(1), dim = x.size(2);
  const int64_t head_dim = dim / num_heads;
  const at::Tensor xq = norm1_q->forward(x.mean({1}, /*keepdim=*/true));
  const at::Tensor xk = norm1_k->forward(x);
  const at::Tensor xv = norm1_v->forward(x);
  auto heads = [&](const at::Tensor& t, int64_t l) {
    return t.reshape({n, l, num_heads, head_dim}).permute({0, 2, 1, 3});  // (N, heads, L, hd)
  };
  at::Tensor qh = heads(at::linear(xq, q->weight, q_bias), 1);
  at::Tensor kh = heads(at::linear(xk, k->weight, k_bias), len);
  at::Tensor vh = heads(at::linear(xv, v->weight, v_bias), len);
  qh = qh * (1.0 / std::sqrt(static_cast<double>(head_dim)));
  at::Tensor attn = at::softmax(at::matmul(qh, kh.transpose(-2, -1)), -1);
  at::Tensor out = at::matmul(attn, vh).transpose(1, 2).reshape({n, 1, dim});
  return proj->forward(out).squeeze(1);
}

// ---------------------------------------------------------------------------------------------
InternImage::InternImage(const InternImageConfig& config, int64_t num_classes)
    : config_(config), num_classes_(num_classes) {
  ValidateConfig(config_);
  patch_embed = register_module("patch_embed", std::make_shared<StemLayer>(3, config_.channels));
  auto list = register_module("levels", std::make_shared<torch::nn::Module>());
  for (int i = 0; i < 4; ++i) {
    levels.push_back(
        list->register_module(std::to_string(i), std::make_shared<InternImageLevel>(config_, i)));
  }
  if (num_classes_ <= 0) return;
  const int64_t features = config_.LevelChannels(3);
  if (!config_.use_clip_projector) {
    const auto widened = static_cast<int64_t>(features * config_.cls_scale);
    auto conv_head = register_module("conv_head", std::make_shared<torch::nn::Module>());
    conv_head_conv = conv_head->register_module(
        "0", std::make_shared<Conv2d>(features, widened, 1, 1, 0, 1, /*bias=*/false));
    conv_head_bn = RegisterIndexed(*conv_head, "1", 0, std::make_shared<BatchNorm2d>(widened));
    head = register_module("head", std::make_shared<Linear>(widened, num_classes_));
  } else {
    constexpr int64_t kEmbed = 1024, kStride = 2, kHeads = 16, kClipDim = 768;
    dcnv3_head_x4 =
        RegisterIndexed(*this, "dcnv3_head_x4", 0,
                        std::make_shared<Conv2d>(features, kEmbed * kStride * kStride, 1, 1, 0));
    dcnv3_head_x3 =
        register_module("dcnv3_head_x3", std::make_shared<Conv2d>(features / 2, kEmbed, 1, 1, 0));
    clip_projector = register_module("clip_projector",
                                     std::make_shared<AttentionPooling>(kEmbed, kHeads, kClipDim));
    fc_norm = RegisterIndexed(*this, "fc_norm", 0, std::make_shared<LayerNorm>(kClipDim, 1e-6));
    head = register_module("head", std::make_shared<Linear>(kClipDim, num_classes_));
  }
}

std::vector<at::Tensor> InternImage::ForwardLevels(const at::Tensor& x) const {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "InternImage: input must be (N, 3, H, W), got ",
              x.sizes());
  std::vector<at::Tensor> outs;
  at::Tensor h = patch_embed->forward(x);
  for (const auto& level : levels) {
    auto [out, next] = level->forward(h);
    outs.push_back(ToChannelsFirst(out).contiguous());
    h = next;
  }
  return outs;
}

at::Tensor InternImage::HeadLogits(const std::vector<at::Tensor>& lv) const {
  TORCH_CHECK(num_classes_ > 0, "InternImage: this model was built without a classifier");
  TORCH_CHECK(lv.size() == 4, "InternImage: expected 4 level outputs, got ", lv.size());
  if (!config_.use_clip_projector) {
    at::Tensor y = Gelu(conv_head_bn->forward(conv_head_conv->forward(lv[3])));
    y = at::adaptive_avg_pool2d(y, {1, 1}).flatten(1);
    return head->forward(y);
  }
  at::Tensor x4 = at::pixel_shuffle(dcnv3_head_x4->forward(lv[3]), 2);
  at::Tensor x = x4 + dcnv3_head_x3->forward(lv[2]);
  x = x.flatten(2).transpose(1, 2).contiguous();  // (N, L, 1024)
  x = fc_norm->forward(clip_projector->forward(x));
  return head->forward(x);
}

at::Tensor InternImage::ForwardLogits(const at::Tensor& x) const {
  return HeadLogits(ForwardLevels(x));
}

}  // namespace iis::models::backbone
