#include "models/cpu/internimage_cpu_plan.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "models/cpu/fused_kernels.h"
#include "ops/dcnv3.h"

namespace iis::models::cpu {
namespace {

// Stage timing for performance work: with IIS_PLAN_PROFILE=1 in the environment, the time of each
// stage kind is accumulated and printed at exit. Off by default (one branch per stage).
class StageProfile {
 public:
  static StageProfile& Get() {
    static StageProfile p;
    return p;
  }
  bool enabled() const { return enabled_; }
  void Add(const char* stage, double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    totals_[stage] += seconds;
  }
  ~StageProfile() {
    if (!enabled_) return;
    double all = 0;
    for (const auto& [k, v] : totals_) all += v;
    for (const auto& [k, v] : totals_)
      std::fprintf(stderr, "[plan profile] %-14s %9.3f s  %5.1f%%\n", k.c_str(), v, 100 * v / all);
  }

 private:
  StageProfile() : enabled_(std::getenv("IIS_PLAN_PROFILE") != nullptr) {}
  bool enabled_;
  std::mutex mu_;
  std::map<std::string, double> totals_;
};

class ScopedStage {
 public:
  explicit ScopedStage(const char* name) : name_(name) {
    if (StageProfile::Get().enabled()) start_ = std::chrono::steady_clock::now();
  }
  ~ScopedStage() {
    if (!StageProfile::Get().enabled()) return;
    StageProfile::Get().Add(
        name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

 private:
  const char* name_;
  std::chrono::steady_clock::time_point start_;
};

cpu::LayerNormParams LnParams(const LayerNorm& ln) {
  cpu::LayerNormParams p;
  p.weight = ln.weight.data_ptr<float>();
  p.bias = ln.bias.data_ptr<float>();
  p.channels = ln.weight.size(0);
  p.eps = static_cast<float>(ln.eps);
  return p;
}

// Splits [0, rows) over the intra-op threads; about 16 KB of floats per task.
template <typename Fn>
void ParallelRows(int64_t rows, int64_t row_elems, const Fn& fn) {
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, row_elems));
  at::parallel_for(0, rows, grain, [&](int64_t b, int64_t e) { fn(b, e); });
}

void LayerNormInto(const at::Tensor& in, const at::Tensor& out, const LayerNorm& ln) {
  ScopedStage stage("layernorm");
  const int64_t rows = in.size(0), c = in.size(1);
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const auto p = LnParams(ln);
  ParallelRows(rows, c, [&](int64_t b, int64_t e) {
    cpu::LayerNormRows(src, in.stride(0), dst, out.stride(0), p, b, e);
  });
}

void AddScaledLayerNorm(const at::Tensor& x, const at::Tensor& t, const at::Tensor& scale,
                        const LayerNorm& ln) {
  ScopedStage stage("add_layernorm");
  const int64_t rows = x.size(0), c = x.size(1);
  float* xp = x.data_ptr<float>();
  const float* tp = t.data_ptr<float>();
  const float* sp = scale.defined() ? scale.data_ptr<float>() : nullptr;
  const auto p = LnParams(ln);
  ParallelRows(rows, c, [&](int64_t b, int64_t e) {
    cpu::AddScaledLayerNormRows(xp, x.stride(0), tp, t.stride(0), sp, p, b, e);
  });
}

}  // namespace

struct InternImageCpuPlan::Block {
  const models::backbone::InternImageLayer* layer = nullptr;
  int64_t channels = 0;
  int64_t hidden = 0;
  ops::Dcnv3Params dcn;
  int64_t om_channels = 0;  // G*K*2 + G*K (+ G with centre feature scale)
  bool center_feature_scale = false;
  // Residual style, mirroring InternImageLayer::forward.
  bool fold_into_residual = false;       // pre-norm: gamma folded, residual fused into the matmul
  const LayerNorm* pre_norm1 = nullptr;  // applied to x before the branch (or null)
  const LayerNorm* pre_norm2 = nullptr;
  const LayerNorm* post_norm1 = nullptr;  // applied to the branch output (or null)
  const LayerNorm* post_norm2 = nullptr;
  at::Tensor post_scale1, post_scale2;  // gamma for post-norm with layer scale
  std::unique_ptr<CpuLinear> input_proj, offset_mask, output_proj, fc1, fc2;
  at::Tensor dw_weight;  // (k, k, C)
  at::Tensor dw_bias;
  int dw_kernel = 3;
};

struct InternImageCpuPlan::Level {
  const models::backbone::InternImageLevel* level = nullptr;
  std::vector<std::unique_ptr<Block>> blocks;
};

InternImageCpuPlan::InternImageCpuPlan(std::shared_ptr<const models::backbone::InternImage> model,
                                       CpuLinear::Backend backend)
    : model_(std::move(model)) {
  TORCH_CHECK(model_ != nullptr, "InternImageCpuPlan: null model");
  for (const auto& p : model_->parameters()) {
    TORCH_CHECK(p.device().is_cpu() && p.scalar_type() == at::kFloat,
                "InternImageCpuPlan: the model must have fp32 CPU weights, found ", p.scalar_type(),
                " on ", p.device());
  }
  at::NoGradGuard no_grad;
  using Epi = CpuLinear::Epilogue;
  for (const auto& lv : model_->levels) {
    auto level = std::make_unique<Level>();
    level->level = lv.get();
    for (const auto& layer : lv->blocks) {
      auto b = std::make_unique<Block>();
      const models::backbone::Dcnv3Mixer& dcn = *layer->dcn;
      b->layer = layer.get();
      b->channels = dcn.channels;
      b->hidden = layer->fc1->weight.size(0);
      b->dcn.group = dcn.groups;
      b->dcn.group_channels = dcn.channels / dcn.groups;
      b->dcn.offset_scale = dcn.offset_scale;
      b->dcn.remove_center = dcn.remove_center;
      b->center_feature_scale = dcn.center_feature_scale;

      // Fused offset + mask (+ centre feature scale) projection of x1.
      std::vector<at::Tensor> ws = {dcn.offset->weight, dcn.mask->weight};
      std::vector<at::Tensor> bs = {dcn.offset->bias, dcn.mask->bias};
      if (dcn.center_feature_scale) {
        ws.push_back(dcn.center_feature_scale_proj_weight);
        bs.push_back(dcn.center_feature_scale_proj_bias);
      }
      const at::Tensor w_om = at::cat(ws, 0), b_om = at::cat(bs, 0);
      b->om_channels = w_om.size(0);
      b->offset_mask = std::make_unique<CpuLinear>(w_om, b_om, Epi::kBias, backend);
      b->input_proj = std::make_unique<CpuLinear>(dcn.input_proj->weight, dcn.input_proj->bias,
                                                  Epi::kBias, backend);
      b->fc1 = std::make_unique<CpuLinear>(layer->fc1->weight, layer->fc1->bias, Epi::kBiasGelu,
                                           backend);
      b->dw_kernel = static_cast<int>(dcn.dw_conv->weight.size(2));
      b->dw_weight = dcn.dw_conv->weight.squeeze(1).permute({1, 2, 0}).contiguous();  // (k, k, C)
      b->dw_bias = dcn.dw_conv->bias.contiguous();

      const bool pre_norm =
          layer->layer_scale ? !layer->post_norm : !layer->post_norm && !layer->res_post_norm;
      if (pre_norm) {
        // x = x + gamma * (y W^T + b) == x + y (gamma W)^T + gamma b: fold, fuse the residual.
        at::Tensor g = layer->layer_scale ? layer->gamma1 : at::ones({b->channels});
        at::Tensor g2 = layer->layer_scale ? layer->gamma2 : at::ones({b->channels});
        b->fold_into_residual = true;
        b->pre_norm1 = layer->norm1.get();
        b->pre_norm2 = layer->norm2.get();
        b->output_proj =
            std::make_unique<CpuLinear>(dcn.output_proj->weight * g.unsqueeze(1),
                                        dcn.output_proj->bias * g, Epi::kBiasAccumulate, backend);
        b->fc2 = std::make_unique<CpuLinear>(layer->fc2->weight * g2.unsqueeze(1),
                                             layer->fc2->bias * g2, Epi::kBiasAccumulate, backend);
      } else {
        b->output_proj = std::make_unique<CpuLinear>(dcn.output_proj->weight, dcn.output_proj->bias,
                                                     Epi::kBias, backend);
        b->fc2 =
            std::make_unique<CpuLinear>(layer->fc2->weight, layer->fc2->bias, Epi::kBias, backend);
        if (layer->post_norm) {  // x = x + [gamma *] norm(branch(x))
          b->post_norm1 = layer->norm1.get();
          b->post_norm2 = layer->norm2.get();
          if (layer->layer_scale) {
            b->post_scale1 = layer->gamma1;
            b->post_scale2 = layer->gamma2;
          }
        } else {  // res_post_norm: x = x + res_post_norm(branch(norm(x)))
          b->pre_norm1 = layer->norm1.get();
          b->pre_norm2 = layer->norm2.get();
          b->post_norm1 = layer->res_post_norm1.get();
          b->post_norm2 = layer->res_post_norm2.get();
        }
      }
      level->blocks.push_back(std::move(b));
    }
    levels_.push_back(std::move(level));
  }
  if (model_->num_classes() > 0 && model_->conv_head_conv) {
    auto [scale, shift] = model_->conv_head_bn->Folded();
    const at::Tensor w = model_->conv_head_conv->weight.flatten(1) * scale.unsqueeze(1);
    conv_head_ = std::make_unique<CpuLinear>(w, shift, Epi::kBiasGelu, backend);
  }
}

InternImageCpuPlan::~InternImageCpuPlan() = default;

at::Tensor InternImageCpuPlan::RunStem(const at::Tensor& x) const {
  const models::backbone::StemLayer& stem = *model_->patch_embed;
  // Channels-last end to end: the convs run NHWC (oneDNN through ATen), norms on rows.
  at::Tensor y = stem.conv1->forward(x.contiguous(at::MemoryFormat::ChannelsLast));
  at::Tensor rows = y.permute({0, 2, 3, 1}).contiguous();  // (N, H, W, C) dense
  const int64_t c1 = rows.size(3);
  at::Tensor flat = rows.view({-1, c1});
  LayerNormInto(flat, flat, *stem.norm1);
  at::gelu_(flat);
  y = stem.conv2->forward(rows.permute({0, 3, 1, 2}));
  rows = y.permute({0, 2, 3, 1}).contiguous();
  flat = rows.view({-1, rows.size(3)});
  LayerNormInto(flat, flat, *stem.norm2);
  return rows;
}

at::Tensor InternImageCpuPlan::RunDcnBranch(const Block& b, const at::Tensor& in, int64_t n,
                                            int64_t h, int64_t w) const {
  const int64_t m = in.size(0), c = b.channels;
  at::Tensor value = at::empty({m, c}, in.options());
  {
    ScopedStage stage("input_proj");
    b.input_proj->Run(in, value);
  }

  at::Tensor x1 = at::empty({m, c}, in.options());
  const models::backbone::Dcnv3Mixer& dcn = *b.layer->dcn;
  cpu::DwConvLnGeluParams p;
  p.input = in.data_ptr<float>();
  p.output = x1.data_ptr<float>();
  p.weight = b.dw_weight.data_ptr<float>();
  p.bias = b.dw_bias.data_ptr<float>();
  p.ln = LnParams(*dcn.dw_norm);
  p.height = h;
  p.width = w;
  p.kernel = b.dw_kernel;
  {
    ScopedStage stage("dwconv_ln_gelu");
    at::parallel_for(0, n * h, 1, [&](int64_t s, int64_t e) { cpu::DwConvLnGeluRows(p, s, e); });
  }

  at::Tensor om = at::empty({m, b.om_channels}, in.options());
  {
    ScopedStage stage("offset_mask");
    b.offset_mask->Run(x1, om);
  }
  const int64_t gk = b.dcn.group * b.dcn.Points();
  const at::Tensor om4 = om.view({n, h, w, b.om_channels});
  ScopedStage dcn_stage("dcnv3");
  at::Tensor y = ops::Dcnv3Softmax(value.view({n, h, w, c}), om4.narrow(3, 0, 2 * gk),
                                   om4.narrow(3, 2 * gk, gk), b.dcn)
                     .view({m, c});
  if (b.center_feature_scale) {
    at::Tensor s = at::sigmoid(om.narrow(1, 3 * gk, b.dcn.group));
    s = s.repeat_interleave(b.dcn.group_channels, /*dim=*/1);
    y = y * (1 - s) + value * s;
  }
  return y;
}

at::Tensor InternImageCpuPlan::RunBlock(const Block& b, at::Tensor x, int64_t n, int64_t h,
                                        int64_t w) const {
  const int64_t m = x.size(0), c = b.channels;
  // Token mixer.
  at::Tensor branch_in = x;
  if (b.pre_norm1 != nullptr) {
    branch_in = at::empty({m, c}, x.options());
    LayerNormInto(x, branch_in, *b.pre_norm1);
  }
  at::Tensor y = RunDcnBranch(b, branch_in, n, h, w);
  if (b.fold_into_residual) {
    ScopedStage stage("output_proj");
    b.output_proj->Run(y, x);  // x += y (gamma W)^T + gamma b
  } else {
    at::Tensor t = at::empty({m, c}, x.options());
    ScopedStage stage("output_proj");
    b.output_proj->Run(y, t);
    AddScaledLayerNorm(x, t, b.post_scale1, *b.post_norm1);
  }
  // MLP.
  at::Tensor mlp_in = x;
  if (b.pre_norm2 != nullptr) {
    // The mixer's normalised input is no longer needed: reuse its buffer.
    mlp_in = b.pre_norm1 != nullptr ? branch_in : at::empty({m, c}, x.options());
    LayerNormInto(x, mlp_in, *b.pre_norm2);
  }
  at::Tensor hidden = at::empty({m, b.hidden}, x.options());
  {
    ScopedStage stage("fc1_gelu");
    b.fc1->Run(mlp_in, hidden);
  }
  if (b.fold_into_residual) {
    ScopedStage stage("fc2");
    b.fc2->Run(hidden, x);
  } else {
    at::Tensor t = at::empty({m, c}, x.options());
    ScopedStage stage("fc2");
    b.fc2->Run(hidden, t);
    AddScaledLayerNorm(x, t, b.post_scale2, *b.post_norm2);
  }
  return x;
}

std::vector<at::Tensor> InternImageCpuPlan::ForwardLevels(const at::Tensor& input) const {
  TORCH_CHECK(input.dim() == 4 && input.size(1) == 3 && input.scalar_type() == at::kFloat &&
                  input.device().is_cpu(),
              "InternImageCpuPlan: input must be a CPU fp32 (N, 3, H, W) tensor, got ",
              input.sizes(), " ", input.scalar_type(), " on ", input.device());
  at::NoGradGuard no_grad;
  at::Tensor x;
  {
    ScopedStage stage("stem");
    x = RunStem(input);  // (N, H, W, C)
  }
  std::vector<at::Tensor> outs;
  for (const auto& level : levels_) {
    const int64_t n = x.size(0), h = x.size(1), w = x.size(2), c = x.size(3);
    at::Tensor rows = x.view({n * h * w, c});
    const models::backbone::InternImageLevel& lv = *level->level;
    for (size_t j = 0; j < level->blocks.size(); ++j) {
      rows = RunBlock(*level->blocks[j], rows, n, h, w);
      for (size_t k = 0; k < lv.post_norm_block_ids.size(); ++k) {
        if (lv.post_norm_block_ids[k] == static_cast<int>(j))
          LayerNormInto(rows, rows, *lv.post_norms[k]);
      }
    }
    if (lv.norm) LayerNormInto(rows, rows, *lv.norm);
    const at::Tensor out = rows.view({n, h, w, c});
    outs.push_back(out.permute({0, 3, 1, 2}));  // NCHW view, channels-last strides
    if (lv.downsample_conv) {
      ScopedStage stage("downsample");
      at::Tensor d = lv.downsample_conv->forward(outs.back());
      at::Tensor next = d.permute({0, 2, 3, 1}).contiguous();
      at::Tensor flat = next.view({-1, next.size(3)});
      LayerNormInto(flat, flat, *lv.downsample_norm);
      x = next;
    }
  }
  return outs;
}

at::Tensor InternImageCpuPlan::ForwardLogits(const at::Tensor& x) const {
  TORCH_CHECK(model_->num_classes() > 0, "InternImageCpuPlan: the model has no classifier");
  std::vector<at::Tensor> levels = ForwardLevels(x);
  if (!conv_head_) {
    // H/G: attention-pooling head, small; the reference implementation.
    for (auto& l : levels) l = l.contiguous();
    at::NoGradGuard no_grad;
    return model_->HeadLogits(levels);
  }
  at::NoGradGuard no_grad;
  ScopedStage stage("head");
  const at::Tensor last = levels[3];  // (N, C, h, w), channels-last strides
  const int64_t n = last.size(0), c = last.size(1), hw = last.size(2) * last.size(3);
  const at::Tensor rows = last.permute({0, 2, 3, 1}).reshape({n * hw, c});
  at::Tensor widened = at::empty({n * hw, conv_head_->out_features()}, rows.options());
  conv_head_->Run(rows, widened);
  const at::Tensor pooled = widened.view({n, hw, -1}).mean(1);
  return at::linear(pooled, model_->head->weight, model_->head->bias);
}

}  // namespace iis::models::cpu
