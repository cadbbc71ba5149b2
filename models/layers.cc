#include "models/layers.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <string_view>

namespace iis::models {
namespace {

thread_local at::Device g_parameter_device = at::kCPU;

at::Tensor Empty(at::IntArrayRef sizes) { return at::empty(sizes, ParameterOptions()); }

// FNV-1a: a name hash that is the same with every standard library.
uint64_t HashName(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

ScopedParameterDevice::ScopedParameterDevice(at::Device device) : previous_(g_parameter_device) {
  g_parameter_device = device;
}

ScopedParameterDevice::~ScopedParameterDevice() { g_parameter_device = previous_; }

at::TensorOptions ParameterOptions() {
  return at::TensorOptions().dtype(at::kFloat).device(g_parameter_device);
}

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias) {
  weight = register_parameter("weight", Empty({out_features, in_features}), false);
  if (with_bias) bias = register_parameter("bias", Empty({out_features}), false);
}

at::Tensor Linear::forward(const at::Tensor& x) const { return at::linear(x, weight, bias); }

LayerNorm::LayerNorm(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({dim}, ParameterOptions()), false);
  bias = register_parameter("bias", at::zeros({dim}, ParameterOptions()), false);
}

at::Tensor LayerNorm::forward(const at::Tensor& x) const {
  return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride_,
               int64_t padding_, int64_t groups_, bool with_bias)
    : stride(stride_), padding(padding_), groups(groups_) {
  weight = register_parameter("weight",
                              Empty({out_channels, in_channels / groups_, kernel, kernel}), false);
  if (with_bias) bias = register_parameter("bias", Empty({out_channels}), false);
}

at::Tensor Conv2d::forward(const at::Tensor& x) const {
  return at::conv2d(x, weight, bias, {stride, stride}, {padding, padding}, {1, 1}, groups);
}

ConvTranspose2d::ConvTranspose2d(int64_t in_channels, int64_t out_channels, int64_t kernel,
                                 int64_t stride_)
    : stride(stride_) {
  weight = register_parameter("weight", Empty({in_channels, out_channels, kernel, kernel}), false);
  bias = register_parameter("bias", Empty({out_channels}), false);
}

at::Tensor ConvTranspose2d::forward(const at::Tensor& x) const {
  return at::conv_transpose2d(x, weight, bias, {stride, stride});
}

BatchNorm2d::BatchNorm2d(int64_t channels, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({channels}, ParameterOptions()), false);
  bias = register_parameter("bias", at::zeros({channels}, ParameterOptions()), false);
  running_mean = register_buffer("running_mean", at::zeros({channels}, ParameterOptions()));
  running_var = register_buffer("running_var", at::ones({channels}, ParameterOptions()));
  num_batches_tracked =
      register_buffer("num_batches_tracked", at::zeros({}, ParameterOptions().dtype(at::kLong)));
}

at::Tensor BatchNorm2d::forward(const at::Tensor& x) const {
  return at::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/false,
                        /*momentum=*/0.0, eps, /*cudnn_enabled=*/false);
}

std::pair<at::Tensor, at::Tensor> BatchNorm2d::Folded() const {
  at::Tensor scale = weight.to(at::kFloat) / at::sqrt(running_var.to(at::kFloat) + eps);
  at::Tensor shift = bias.to(at::kFloat) - running_mean.to(at::kFloat) * scale;
  return {scale, shift};
}

void InitRandomWeights(torch::nn::Module& module, uint64_t seed) {
  at::NoGradGuard no_grad;
  auto init_one = [seed](const std::string& name, at::Tensor t) {
    if (!t.is_floating_point()) return;
    const uint64_t key = seed * 0x9E3779B97F4A7C15ull ^ HashName(name);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(key);
    at::Tensor v = at::empty(t.sizes(), at::kFloat);
    if (EndsWith(name, "running_var")) {
      v.uniform_(0.5, 1.5, gen);
    } else if (EndsWith(name, "running_mean")) {
      v.normal_(0.0, 0.1, gen);
    } else if (EndsWith(name, "gamma1") || EndsWith(name, "gamma2")) {
      v.uniform_(0.5, 1.5, gen);
    } else if (t.dim() == 1) {
      // Biases and norm parameters: norms (named *.weight of 1-D) near 1, biases near 0.
      if (EndsWith(name, "weight")) {
        v.uniform_(0.8, 1.2, gen);
      } else {
        v.normal_(0.0, 0.02, gen);
      }
    } else {
      // Weights: fan-in scaled normal (He-like for conv, std 0.02-ish for wide linears).
      int64_t fan_in = 1;
      for (int64_t d = 1; d < t.dim(); ++d) fan_in *= t.size(d);
      v.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(fan_in)), gen);
    }
    t.copy_(v);
  };
  for (const auto& p : module.named_parameters(/*recurse=*/true)) init_one(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) init_one(b.key(), b.value());
}

}  // namespace iis::models
