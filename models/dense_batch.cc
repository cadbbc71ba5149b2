#include "models/dense_batch.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace iis::models {

DenseImageMeta MetaOf(const NormalizedImage& image) {
  DenseImageMeta meta;
  meta.height = image.height;
  meta.width = image.width;
  meta.original_height = image.original_height;
  meta.original_width = image.original_width;
  meta.scale_x = image.scale_x;
  meta.scale_y = image.scale_y;
  return meta;
}

at::Tensor ImageTensor(const NormalizedImage& image) {
  return at::from_blob(const_cast<float*>(image.chw.data()), {3, image.height, image.width},
                       at::kFloat);
}

DenseImageMeta IdentityMeta(int64_t height, int64_t width) {
  DenseImageMeta m;
  m.height = m.original_height = height;
  m.width = m.original_width = width;
  return m;
}

int64_t RoundUp(int64_t value, int64_t divisor) {
  return (value + divisor - 1) / divisor * divisor;
}

at::Tensor CollateImages(const std::vector<at::Tensor>& images, int64_t size_divisor) {
  TORCH_CHECK(!images.empty(), "CollateImages: images must not be empty");
  TORCH_CHECK(size_divisor >= 1, "CollateImages: size_divisor must be >= 1, got ", size_divisor);
  int64_t max_h = 0, max_w = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const at::Tensor& im = images[i];
    TORCH_CHECK(
        im.defined() && im.dim() == 3 && im.size(0) == 3 && im.size(1) > 0 && im.size(2) > 0,
        "CollateImages: image ", i, " must be a non-empty (3, h, w) tensor, got ",
        im.defined() ? im.sizes() : at::IntArrayRef{});
    TORCH_CHECK(im.is_floating_point(), "CollateImages: image ", i, " must be floating point, got ",
                im.scalar_type());
    TORCH_CHECK(im.device() == images[0].device() && im.scalar_type() == images[0].scalar_type(),
                "CollateImages: image ", i, " is ", im.scalar_type(), " on ", im.device(),
                " but image 0 is ", images[0].scalar_type(), " on ", images[0].device());
    max_h = std::max(max_h, im.size(1));
    max_w = std::max(max_w, im.size(2));
  }
  const int64_t h = RoundUp(max_h, size_divisor), w = RoundUp(max_w, size_divisor);
  at::Tensor batch = at::zeros({static_cast<int64_t>(images.size()), 3, h, w}, images[0].options());
  for (size_t i = 0; i < images.size(); ++i) {
    batch[static_cast<int64_t>(i)]
        .slice(1, 0, images[i].size(1))
        .slice(2, 0, images[i].size(2))
        .copy_(images[i]);
  }
  return batch;
}

void CheckDenseMetas(const at::Tensor& batch, const std::vector<DenseImageMeta>& metas,
                     const char* who) {
  TORCH_CHECK(batch.dim() == 4 && batch.size(1) == 3 && batch.size(0) > 0 && batch.size(2) > 0 &&
                  batch.size(3) > 0,
              who, ": batch must be a non-empty (N, 3, H, W) tensor, got ", batch.sizes());
  TORCH_CHECK(static_cast<int64_t>(metas.size()) == batch.size(0), who, ": got ", metas.size(),
              " image metas for a batch of ", batch.size(0));
  for (size_t i = 0; i < metas.size(); ++i) {
    const DenseImageMeta& m = metas[i];
    TORCH_CHECK(
        m.height >= 1 && m.height <= batch.size(2) && m.width >= 1 && m.width <= batch.size(3), who,
        ": image ", i, " has height x width ", m.height, "x", m.width, ", expected 1..",
        batch.size(2), " x 1..", batch.size(3), " (the batch size)");
    TORCH_CHECK(m.original_height >= 1 && m.original_width >= 1, who, ": image ", i,
                " has original size ", m.original_height, "x", m.original_width,
                ", expected positive");
    TORCH_CHECK(
        std::isfinite(m.scale_x) && std::isfinite(m.scale_y) && m.scale_x > 0 && m.scale_y > 0, who,
        ": image ", i, " has scale factor (", m.scale_x, ", ", m.scale_y,
        "), expected finite and positive");
  }
}

at::Tensor ConvTranspose2x2(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  TORCH_CHECK(x.dim() == 4 && weight.dim() == 4 && weight.size(0) == x.size(1) &&
                  weight.size(2) == 2 && weight.size(3) == 2 && bias.dim() == 1 &&
                  bias.size(0) == weight.size(1),
              "ConvTranspose2x2: expected x (N, C, H, W), weight (C, O, 2, 2) and bias (O), got ",
              x.sizes(), ", ", weight.sizes(), ", ", bias.sizes());
  if (!x.device().is_cpu()) return at::conv_transpose2d(x, weight, bias, {2, 2});
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), o = weight.size(1);
  const at::Tensor rows = x.permute({0, 2, 3, 1}).reshape({n * h * w, c});
  const at::Tensor taps = at::mm(rows, weight.reshape({c, o * 4}));  // (N*H*W, O*2*2)
  const at::Tensor out =
      taps.view({n, h, w, o, 2, 2}).permute({0, 3, 1, 4, 2, 5}).reshape({n, o, 2 * h, 2 * w});
  return out + bias.view({1, o, 1, 1});
}

ConvModule::ConvModule(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t padding,
                       bool with_bn, bool relu)
    : relu_(relu) {
  conv = register_module("conv", std::make_shared<Conv2d>(in_channels, out_channels, kernel,
                                                          /*stride=*/1, padding, /*groups=*/1,
                                                          /*bias=*/!with_bn));
  if (with_bn) bn = register_module("bn", std::make_shared<BatchNorm2d>(out_channels));
}

std::pair<at::Tensor, at::Tensor> ConvModule::FoldedWeights() const {
  const at::Tensor w = conv->weight.to(at::kFloat);
  at::Tensor b =
      conv->bias.defined() ? conv->bias.to(at::kFloat) : at::zeros({w.size(0)}, w.options());
  if (!bn) return {w, b};
  const auto [scale, shift] = bn->Folded();
  return {w * scale.view({-1, 1, 1, 1}), shift + b * scale};
}

FoldedConv::FoldedConv(const ConvModule& module, at::Device device, at::ScalarType dtype)
    : padding_(module.padding()), relu_(module.relu()) {
  auto [w, b] = module.FoldedWeights();
  const auto format =
      device.is_cpu() ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  weight_ = w.to(device, dtype).contiguous(format);
  bias_ = b.to(device, dtype);
}

FoldedConv::FoldedConv(const Conv2d& conv, bool relu, at::Device device, at::ScalarType dtype)
    : padding_(conv.padding), relu_(relu) {
  TORCH_CHECK(conv.stride == 1 && conv.groups == 1, "FoldedConv: only stride-1 dense convs");
  const auto format =
      device.is_cpu() ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  weight_ = conv.weight.to(device, dtype).contiguous(format);
  bias_ = conv.bias.defined() ? conv.bias.to(device, dtype)
                              : at::zeros({weight_.size(0)}, weight_.options());
}

at::Tensor FoldedConv::Run(const at::Tensor& x) const {
  at::Tensor y = at::conv2d(x, weight_, bias_, {1, 1}, {padding_, padding_});
  return relu_ ? at::relu_(y) : y;
}

}  // namespace iis::models
