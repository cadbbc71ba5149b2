#include "models/segmentation/upernet.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <stdexcept>
#include <string>

namespace iis::models::segmentation {
namespace {

constexpr int64_t kHeadChannels = 512;
// LogitsToLabelMap resizes at most about this many floats at once.
constexpr int64_t kResizeChunkFloats = int64_t{16} << 20;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

at::Tensor Resize(const at::Tensor& x, int64_t h, int64_t w) {
  return at::upsample_bilinear2d(x, {h, w}, /*align_corners=*/false);
}

}  // namespace

UperHead::UperHead(const std::vector<int64_t>& in_channels, int64_t channels, int64_t num_classes) {
  TORCH_CHECK(in_channels.size() == 4, "UperHead: expected 4 input widths, got ",
              in_channels.size());
  conv_seg = register_module("conv_seg", std::make_shared<Conv2d>(channels, num_classes, 1, 1, 0));
  auto psp = register_module("psp_modules", std::make_shared<torch::nn::Module>());
  for (size_t i = 0; i < std::size(kPoolScales); ++i) {
    // psp_modules.i is Sequential(AdaptiveAvgPool2d, ConvModule): the conv is entry 1.
    psp_modules.push_back(
        RegisterIndexed(*psp, std::to_string(i), 1,
                        std::make_shared<ConvModule>(in_channels[3], channels, 1, 0, true, true)));
  }
  bottleneck = register_module(
      "bottleneck",
      std::make_shared<ConvModule>(in_channels[3] + 4 * channels, channels, 3, 1, true, true));
  auto laterals = register_module("lateral_convs", std::make_shared<torch::nn::Module>());
  auto fpns = register_module("fpn_convs", std::make_shared<torch::nn::Module>());
  for (int i = 0; i < 3; ++i) {
    lateral_convs.push_back(laterals->register_module(
        std::to_string(i),
        std::make_shared<ConvModule>(in_channels[i], channels, 1, 0, true, true)));
  }
  for (int i = 0; i < 3; ++i) {
    fpn_convs.push_back(fpns->register_module(
        std::to_string(i), std::make_shared<ConvModule>(channels, channels, 3, 1, true, true)));
  }
  fpn_bottleneck = register_module(
      "fpn_bottleneck", std::make_shared<ConvModule>(4 * channels, channels, 3, 1, true, true));
}

UperNetNetwork::UperNetNetwork(const models::backbone::InternImageConfig& backbone_config,
                               int64_t num_classes) {
  backbone = register_module("backbone",
                             std::make_shared<models::backbone::InternImage>(backbone_config, 0));
  std::vector<int64_t> widths;
  for (int i = 0; i < 4; ++i) widths.push_back(backbone_config.LevelChannels(i));
  decode_head = register_module("decode_head",
                                std::make_shared<UperHead>(widths, kHeadChannels, num_classes));
}

UperHeadPlan::UperHeadPlan(const UperHead& head, at::Device device, at::ScalarType dtype)
    : format_(device.is_cpu() ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous) {
  for (const auto& m : head.psp_modules) psp_.emplace_back(*m, device, dtype);
  for (const auto& m : head.lateral_convs) lateral_.emplace_back(*m, device, dtype);
  for (const auto& m : head.fpn_convs) fpn_.emplace_back(*m, device, dtype);
  bottleneck_ = FoldedConv(*head.bottleneck, device, dtype);
  fpn_bottleneck_ = FoldedConv(*head.fpn_bottleneck, device, dtype);
  conv_seg_ = FoldedConv(*head.conv_seg, false, device, dtype);
}

at::Tensor UperHeadPlan::Forward(const std::vector<at::Tensor>& levels) const {
  TORCH_CHECK(levels.size() == 4, "UperHeadPlan: expected 4 levels, got ", levels.size());
  std::vector<at::Tensor> in;
  for (const auto& l : levels) in.push_back(l.contiguous(format_));
  const int64_t h3 = in[3].size(2), w3 = in[3].size(3);
  // PPM: [x, up(conv(pool_s(x))) for s in 1, 2, 3, 6] -> bottleneck.
  std::vector<at::Tensor> psp = {in[3]};
  for (size_t i = 0; i < psp_.size(); ++i) {
    const at::Tensor pooled = at::adaptive_avg_pool2d(in[3], {kPoolScales[i], kPoolScales[i]});
    psp.push_back(Resize(psp_[i].Run(pooled), h3, w3));
  }
  std::vector<at::Tensor> lat(4);
  lat[3] = bottleneck_.Run(at::cat(psp, 1));
  psp.clear();
  for (int i = 0; i < 3; ++i) lat[i] = lateral_[i].Run(in[i]);
  in.clear();
  for (int i = 3; i > 0; --i) {
    lat[i - 1] = lat[i - 1] + Resize(lat[i], lat[i - 1].size(2), lat[i - 1].size(3));
  }
  std::vector<at::Tensor> outs(4);
  for (int i = 0; i < 3; ++i) outs[i] = fpn_[i].Run(lat[i]);
  outs[3] = lat[3];
  lat.clear();
  const int64_t h0 = outs[0].size(2), w0 = outs[0].size(3);
  for (int i = 1; i < 4; ++i) outs[i] = Resize(outs[i], h0, w0);
  const at::Tensor fused = fpn_bottleneck_.Run(at::cat(outs, 1));
  outs.clear();
  // Dropout2d is the identity in eval mode.
  return conv_seg_.Run(fused);
}

at::Tensor LogitsToLabelMap(const at::Tensor& logits, int64_t input_height, int64_t input_width,
                            const DenseImageMeta& meta, at::Tensor* input_logits) {
  TORCH_CHECK(logits.dim() == 3 && logits.size(0) >= 1 && logits.size(0) <= 256 &&
                  logits.size(1) > 0 && logits.size(2) > 0,
              "LogitsToLabelMap: logits must be (C, h, w) with 1 <= C <= 256, got ",
              logits.sizes());
  TORCH_CHECK(
      meta.height >= 1 && meta.height <= input_height && meta.width >= 1 &&
          meta.width <= input_width && meta.original_height >= 1 && meta.original_width >= 1,
      "LogitsToLabelMap: image ", meta.width, "x", meta.height, " (original ", meta.original_width,
      "x", meta.original_height, ") does not fit the input ", input_width, "x", input_height);
  const int64_t c = logits.size(0), oh = meta.original_height, ow = meta.original_width;
  // Contiguous NCHW float32: the resize kernel then computes every channel the same way whatever
  // the chunking (channels-last kernels vectorise across channels).
  const at::Tensor x = logits.to(at::kFloat).contiguous().unsqueeze(0);
  if (input_logits != nullptr) {
    *input_logits = at::empty({c, meta.height, meta.width}, x.options().device(at::kCPU));
  }
  const int64_t per_channel = std::max(oh * ow, input_height * input_width);
  const int64_t chunk = std::clamp<int64_t>(kResizeChunkFloats / per_channel, 1, c);
  at::Tensor best_value, best_index;
  for (int64_t c0 = 0; c0 < c; c0 += chunk) {
    const int64_t c1 = std::min(c, c0 + chunk);
    const at::Tensor at_input = Resize(x.slice(1, c0, c1), input_height, input_width);
    const at::Tensor cropped = at_input.slice(2, 0, meta.height).slice(3, 0, meta.width);
    if (input_logits != nullptr) input_logits->slice(0, c0, c1).copy_(cropped[0]);
    const at::Tensor full = Resize(cropped, oh, ow)[0];
    auto [value, index] = at::max(full, 0);
    if (c0 == 0) {
      best_value = value;
      best_index = index;
      continue;
    }
    // Strictly greater: on ties the earlier (lower) class wins, as argmax does.
    const at::Tensor better = value > best_value;
    best_value = at::where(better, value, best_value);
    best_index = at::where(better, index + c0, best_index);
  }
  return best_index.to(at::kByte).to(at::kCPU);
}

UperNet::UperNet(const Architecture& arch) : arch_(arch) {
  if (arch.task != Task::kSegmentation) {
    throw std::invalid_argument(arch.name + " is not a segmentation architecture");
  }
  network_ = std::make_shared<UperNetNetwork>(arch.backbone, arch.num_classes);
}

UperNet::~UperNet() = default;

LoadRules UperNet::CheckpointRules() {
  LoadRules rules;
  rules.ignore_prefixes = {"auxiliary_head."};
  return rules;
}

void UperNet::Prepare(const RunOptions& options) {
  TORCH_CHECK(options.device.is_cuda() || options.dtype == at::kFloat, "UperNet: ", options.dtype,
              " runs on CUDA only; use float32 on the CPU");
  network_->to(options.device, options.dtype);
  options_ = options;
  backbone_plan_.reset();
  if (options.device.is_cpu() && options.dtype == at::kFloat && options.optimized_cpu) {
    backbone_plan_ = std::make_unique<cpu::InternImageCpuPlan>(network_->backbone);
  }
  head_plan_ =
      std::make_unique<UperHeadPlan>(*network_->decode_head, options.device, options.dtype);
}

at::Tensor UperNet::Logits(const at::Tensor& batch, DenseStageTimes* times) const {
  TORCH_CHECK(head_plan_, "UperNet: call Prepare() before Logits() or Segment()");
  TORCH_CHECK(batch.dim() == 4 && batch.size(0) > 0 && batch.size(1) == 3 && batch.size(2) > 0 &&
                  batch.size(3) > 0 && batch.size(2) % 32 == 0 && batch.size(3) % 32 == 0,
              "UperNet: batch must be (N, 3, H, W) with H and W positive multiples of 32, got ",
              batch.sizes());
  at::InferenceMode guard;
  auto start = std::chrono::steady_clock::now();
  const at::Tensor x = batch.to(options_.device, options_.dtype).contiguous();
  const std::vector<at::Tensor> levels =
      backbone_plan_ ? backbone_plan_->ForwardLevels(x) : network_->backbone->ForwardLevels(x);
  const double backbone = Seconds(start);
  start = std::chrono::steady_clock::now();
  // The head runs image by image: convolution libraries pick their algorithms by batch size, so a
  // batched call could round an image's logits differently from a single one.
  std::vector<at::Tensor> per_image;
  for (int64_t i = 0; i < x.size(0); ++i) {
    std::vector<at::Tensor> mine;
    for (const auto& l : levels) mine.push_back(l.slice(0, i, i + 1));
    per_image.push_back(head_plan_->Forward(mine).to(at::kFloat));
  }
  at::Tensor logits = at::cat(per_image).contiguous();
  if (times != nullptr) {
    times->backbone_seconds = backbone;
    times->neck_seconds = 0;
    times->heads_seconds = Seconds(start);
  }
  return logits;
}

std::vector<ImageSegmentation> UperNet::Segment(const at::Tensor& batch,
                                                const std::vector<DenseImageMeta>& metas,
                                                const SegmentationOptions& options,
                                                DenseStageTimes* times) const {
  CheckDenseMetas(batch, metas, "UperNet::Segment");
  const at::Tensor logits = Logits(batch, times);
  at::InferenceMode guard;
  const auto start = std::chrono::steady_clock::now();
  std::vector<ImageSegmentation> out(metas.size());
  for (size_t i = 0; i < metas.size(); ++i) {
    out[i].label_map =
        LogitsToLabelMap(logits[static_cast<int64_t>(i)], batch.size(2), batch.size(3), metas[i],
                         options.return_logits ? &out[i].logits : nullptr);
  }
  if (times != nullptr) times->postprocess_seconds = Seconds(start);
  return out;
}

}  // namespace iis::models::segmentation
