#include "models/detection/mask_rcnn.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "models/detection/box_ops.h"

namespace iis::models::detection {
namespace {

constexpr int64_t kFpnChannels = 256;
constexpr int64_t kFcChannels = 1024;
constexpr int64_t kBoxRoiSize = 7;
constexpr int64_t kMaskRoiSize = 14;

// Registers an empty container module (an nn.ModuleList) under `name`.
std::shared_ptr<torch::nn::Module> RegisterList(torch::nn::Module& parent,
                                                const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

FpnNeck::FpnNeck(const std::vector<int64_t>& in_channels, int64_t out_channels) {
  auto laterals = RegisterList(*this, "lateral_convs");
  auto fpns = RegisterList(*this, "fpn_convs");
  for (size_t i = 0; i < in_channels.size(); ++i) {
    const std::string idx = std::to_string(i);
    lateral_convs.push_back(laterals->register_module(
        idx, std::make_shared<ConvModule>(in_channels[i], out_channels, 1, 0, false, false)));
    fpn_convs.push_back(fpns->register_module(
        idx, std::make_shared<ConvModule>(out_channels, out_channels, 3, 1, false, false)));
  }
}

RpnHead::RpnHead(int64_t channels) {
  rpn_conv = register_module("rpn_conv", std::make_shared<Conv2d>(channels, channels, 3, 1, 1));
  rpn_cls =
      register_module("rpn_cls", std::make_shared<Conv2d>(channels, kAnchorsPerLocation, 1, 1, 0));
  rpn_reg = register_module("rpn_reg",
                            std::make_shared<Conv2d>(channels, 4 * kAnchorsPerLocation, 1, 1, 0));
}

BBoxHead::BBoxHead(int64_t in_channels, int64_t roi_size, int64_t fc_channels,
                   int64_t num_classes) {
  fc_cls = register_module("fc_cls", std::make_shared<Linear>(fc_channels, num_classes + 1));
  fc_reg = register_module("fc_reg", std::make_shared<Linear>(fc_channels, 4 * num_classes));
  auto fcs = RegisterList(*this, "shared_fcs");
  shared_fcs.push_back(fcs->register_module(
      "0", std::make_shared<Linear>(in_channels * roi_size * roi_size, fc_channels)));
  shared_fcs.push_back(
      fcs->register_module("1", std::make_shared<Linear>(fc_channels, fc_channels)));
}

MaskHead::MaskHead(int64_t channels, int64_t num_classes) {
  auto list = RegisterList(*this, "convs");
  for (int i = 0; i < 4; ++i) {
    convs.push_back(list->register_module(
        std::to_string(i), std::make_shared<ConvModule>(channels, channels, 3, 1, false, true)));
  }
  upsample =
      register_module("upsample", std::make_shared<ConvTranspose2d>(channels, channels, 2, 2));
  conv_logits =
      register_module("conv_logits", std::make_shared<Conv2d>(channels, num_classes, 1, 1, 0));
}

RoiHead::RoiHead(int64_t num_classes) {
  bbox_head = register_module(
      "bbox_head", std::make_shared<BBoxHead>(kFpnChannels, kBoxRoiSize, kFcChannels, num_classes));
  mask_head = register_module("mask_head", std::make_shared<MaskHead>(kFpnChannels, num_classes));
}

MaskRcnnNetwork::MaskRcnnNetwork(const models::backbone::InternImageConfig& backbone_config,
                                 int64_t num_classes) {
  backbone = register_module("backbone",
                             std::make_shared<models::backbone::InternImage>(backbone_config, 0));
  std::vector<int64_t> widths;
  for (int i = 0; i < 4; ++i) widths.push_back(backbone_config.LevelChannels(i));
  neck = register_module("neck", std::make_shared<FpnNeck>(widths, kFpnChannels));
  rpn_head = register_module("rpn_head", std::make_shared<RpnHead>(kFpnChannels));
  roi_head = register_module("roi_head", std::make_shared<RoiHead>(num_classes));
}

// The heads' weights in the run dtype/device, convolutions channels-last on the CPU.
struct MaskRcnn::Plan {
  std::vector<FoldedConv> lateral, fpn;
  FoldedConv rpn_conv;
  // rpn_cls and rpn_reg stacked: one (15, 256) matrix applied to every pixel (a 1x1 convolution
  // as a GEMM over the channels-last pixels; LibTorch's convolution takes its slow path for so
  // few output channels).
  at::Tensor rpn_out_w, rpn_out_b;
  std::vector<std::pair<at::Tensor, at::Tensor>> shared_fcs;  // (weight, bias)
  at::Tensor cls_w, cls_b, reg_w, reg_b;
  std::vector<FoldedConv> mask_convs;
  at::Tensor up_w, up_b;
  FoldedConv mask_logits;
  at::MemoryFormat format = at::MemoryFormat::Contiguous;
};

MaskRcnn::MaskRcnn(const Architecture& arch) : arch_(arch) {
  if (arch.task != Task::kDetection) {
    throw std::invalid_argument(arch.name + " is not a detection architecture");
  }
  network_ = std::make_shared<MaskRcnnNetwork>(arch.backbone, arch.num_classes);
}

MaskRcnn::~MaskRcnn() = default;

void MaskRcnn::Prepare(const RunOptions& options) {
  TORCH_CHECK(options.device.is_cuda() || options.dtype == at::kFloat, "MaskRcnn: ", options.dtype,
              " runs on CUDA only; use float32 on the CPU");
  network_->to(options.device, options.dtype);
  options_ = options;
  backbone_plan_.reset();
  const bool cpu_fast =
      options.device.is_cpu() && options.dtype == at::kFloat && options.optimized_cpu;
  if (cpu_fast) backbone_plan_ = std::make_unique<cpu::InternImageCpuPlan>(network_->backbone);
  const at::Device dev = options.device;
  const at::ScalarType dt = options.dtype;
  auto plan = std::make_unique<Plan>();
  plan->format = dev.is_cpu() ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const FpnNeck& neck = *network_->neck;
  for (size_t i = 0; i < neck.lateral_convs.size(); ++i) {
    plan->lateral.emplace_back(*neck.lateral_convs[i], dev, dt);
    plan->fpn.emplace_back(*neck.fpn_convs[i], dev, dt);
  }
  const RpnHead& rpn = *network_->rpn_head;
  plan->rpn_conv = FoldedConv(*rpn.rpn_conv, true, dev, dt);
  plan->rpn_out_w = at::cat({rpn.rpn_cls->weight, rpn.rpn_reg->weight}).flatten(1);
  plan->rpn_out_b = at::cat({rpn.rpn_cls->bias, rpn.rpn_reg->bias});
  const BBoxHead& box = *network_->roi_head->bbox_head;
  for (const auto& fc : box.shared_fcs) plan->shared_fcs.emplace_back(fc->weight, fc->bias);
  plan->cls_w = box.fc_cls->weight;
  plan->cls_b = box.fc_cls->bias;
  plan->reg_w = box.fc_reg->weight;
  plan->reg_b = box.fc_reg->bias;
  const MaskHead& mask = *network_->roi_head->mask_head;
  for (const auto& c : mask.convs) plan->mask_convs.emplace_back(*c, dev, dt);
  plan->up_w = mask.upsample->weight;
  plan->up_b = mask.upsample->bias;
  plan->mask_logits = FoldedConv(*mask.conv_logits, false, dev, dt);
  plan_ = std::move(plan);
}

std::vector<at::Tensor> MaskRcnn::Backbone(const at::Tensor& x) const {
  if (backbone_plan_) return backbone_plan_->ForwardLevels(x);
  return network_->backbone->ForwardLevels(x);
}

std::vector<at::Tensor> MaskRcnn::Neck(const std::vector<at::Tensor>& feats) const {
  const Plan& p = *plan_;
  std::vector<at::Tensor> lat(4);
  for (int i = 0; i < 4; ++i) lat[i] = p.lateral[i].Run(feats[i].contiguous(p.format));
  // Top-down: nearest upsampling to the finer level's size, added to its lateral.
  for (int i = 3; i > 0; --i) {
    lat[i - 1] =
        lat[i - 1] + at::upsample_nearest2d(lat[i], {lat[i - 1].size(2), lat[i - 1].size(3)});
  }
  std::vector<at::Tensor> levels(5);
  for (int i = 0; i < 4; ++i) levels[i] = p.fpn[i].Run(lat[i]);
  levels[4] = at::max_pool2d(levels[3], {1, 1}, {2, 2});  // P6 = P5[::2, ::2]
  return levels;
}

ImageDetections MaskRcnn::Heads(std::vector<at::Tensor> levels, const DenseImageMeta& meta,
                                const DetectionOptions& options) const {
  const Plan& p = *plan_;
  // ---- RPN on every level (shared weights), then the proposals.
  std::vector<at::Tensor> cls(5), reg(5), anchors(5);
  for (int l = 0; l < 5; ++l) {
    const at::Tensor t = p.rpn_conv.Run(levels[l])[0];  // (256, h, w)
    const at::Tensor out = at::linear(t.permute({1, 2, 0}), p.rpn_out_w, p.rpn_out_b)
                               .to(at::kFloat)
                               .permute({2, 0, 1});  // (15, h, w) view
    cls[l] = out.slice(0, 0, kAnchorsPerLocation);
    reg[l] = out.slice(0, kAnchorsPerLocation);
    anchors[l] =
        GridAnchors(kRpnStrides[l], levels[l].size(2), levels[l].size(3)).to(options_.device);
  }
  const at::Tensor proposals = RpnProposals(cls, reg, anchors, meta.height, meta.width);
  // The RoI heads pool from P2..P5 (made contiguous once, not inside every RoIAlign call).
  levels.pop_back();
  for (auto& l : levels) l = l.contiguous();
  // ---- Box head, decode clipped to the image, rescale to the original, multi-class NMS.
  const at::Tensor boxes_in = proposals.slice(1, 0, 4);
  const at::Tensor rois =
      at::cat({at::zeros({boxes_in.size(0), 1}, boxes_in.options()), boxes_in}, 1);
  at::Tensor h = ExtractRoiFeatures(levels, rois, kBoxRoiSize).flatten(1);
  for (const auto& [w, b] : p.shared_fcs) h = at::relu(at::linear(h, w, b));
  Detections det = RcnnPostprocess(boxes_in, at::linear(h, p.cls_w, p.cls_b).to(at::kFloat),
                                   at::linear(h, p.reg_w, p.reg_b).to(at::kFloat), meta.height,
                                   meta.width, meta.scale_x, meta.scale_y);
  // Stricter options only drop entries: NMS visits boxes by decreasing score, so the boxes a
  // higher threshold keeps are never suppressed by those it drops.
  const int64_t kept = std::min<int64_t>(
      (det.scores > options.score_threshold).sum().item<int64_t>(), options.max_detections);
  det = {det.boxes.slice(0, 0, kept), det.scores.slice(0, 0, kept), det.labels.slice(0, 0, kept)};
  ImageDetections r;
  r.boxes = det.boxes.to(at::kCPU);
  r.scores = det.scores.to(at::kCPU);
  r.labels = det.labels.to(at::kCPU);
  if (!options.masks) return r;
  const int64_t kd = det.boxes.size(0);
  if (kd == 0) {
    r.mask_probs = at::zeros({0, kMaskSize, kMaskSize}, at::kFloat);
    return r;
  }
  // ---- Mask head: its RoIs are the rescaled detections times the scale factor (input pixels).
  const at::Tensor scale =
      at::tensor({meta.scale_x, meta.scale_y, meta.scale_x, meta.scale_y}).to(options_.device);
  const at::Tensor b = det.boxes * scale;
  const at::Tensor mask_rois = at::cat({at::zeros({kd, 1}, b.options()), b}, 1);
  at::Tensor m = ExtractRoiFeatures(levels, mask_rois, kMaskRoiSize).contiguous(p.format);
  for (const auto& c : p.mask_convs) m = c.Run(m);
  m = at::relu(ConvTranspose2x2(m, p.up_w, p.up_b));
  const at::Tensor logits = p.mask_logits.Run(m);
  const at::Tensor picked = logits.index({at::arange(kd, det.labels.options()), det.labels});
  r.mask_probs = picked.to(at::kFloat).sigmoid().to(at::kCPU).contiguous();
  return r;
}

std::vector<ImageDetections> MaskRcnn::Detect(const at::Tensor& batch,
                                              const std::vector<DenseImageMeta>& metas,
                                              const DetectionOptions& options,
                                              DenseStageTimes* times) const {
  TORCH_CHECK(plan_, "MaskRcnn: call Prepare() before Detect()");
  CheckDenseMetas(batch, metas, "MaskRcnn::Detect");
  TORCH_CHECK(batch.size(2) % 32 == 0 && batch.size(3) % 32 == 0,
              "MaskRcnn::Detect: batch height and width must be multiples of 32 (the official "
              "padding), got ",
              batch.size(2), "x", batch.size(3));
  TORCH_CHECK(options.score_threshold >= kRcnnScoreThreshold && options.score_threshold <= 1.0,
              "MaskRcnn::Detect: score_threshold must be in [", kRcnnScoreThreshold,
              ", 1] (the model's own threshold is ", kRcnnScoreThreshold, "), got ",
              options.score_threshold);
  TORCH_CHECK(options.max_detections >= 1 && options.max_detections <= kRcnnMaxPerImage,
              "MaskRcnn::Detect: max_detections must be in [1, ", kRcnnMaxPerImage, "], got ",
              options.max_detections);
  at::InferenceMode guard;
  DenseStageTimes local;
  auto start = std::chrono::steady_clock::now();
  at::Tensor x = batch.to(options_.device, options_.dtype);
  if (backbone_plan_) x = x.contiguous();
  const std::vector<at::Tensor> feats = Backbone(x);
  local.backbone_seconds = Seconds(start);
  // Neck and heads run image by image: convolution and GEMM libraries pick their algorithms by
  // batch size, so a batched call could round an image's values differently from a single one.
  std::vector<ImageDetections> results;
  for (int64_t i = 0; i < batch.size(0); ++i) {
    start = std::chrono::steady_clock::now();
    std::vector<at::Tensor> mine;
    for (const auto& f : feats) mine.push_back(f.slice(0, i, i + 1));
    std::vector<at::Tensor> levels = Neck(mine);
    local.neck_seconds += Seconds(start);
    start = std::chrono::steady_clock::now();
    results.push_back(Heads(std::move(levels), metas[i], options));
    local.heads_seconds += Seconds(start);
  }
  if (times != nullptr) *times = local;
  return results;
}

}  // namespace iis::models::detection
