// Leaf modules with the parameter names of their PyTorch counterparts (weight, bias,
// running_mean ...), so module trees built from them produce the official state-dict keys.
//
// Each forward() is the plain ATen reference computation (used on CUDA and as the ground truth of
// the optimised CPU path in models/cpu/). Modules are not thread-safe to mutate; forward() is
// const in effect and safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <torch/nn/module.h>

namespace iis::models {

// nn.Linear: y = x W^T + b over the last dimension.
class Linear : public torch::nn::Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor weight;  // (out, in)
  at::Tensor bias;    // (out) or undefined
};

// nn.LayerNorm over the last dimension.
class LayerNorm : public torch::nn::Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-6);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor weight;
  at::Tensor bias;
  double eps;
};

// nn.Conv2d on NCHW input (any memory format).
class Conv2d : public torch::nn::Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding,
         int64_t groups = 1, bool bias = true);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor weight;  // (out, in / groups, k, k)
  at::Tensor bias;    // (out) or undefined
  int64_t stride;
  int64_t padding;
  int64_t groups;
};

// nn.ConvTranspose2d (weight layout (in, out / groups, k, k)) on NCHW input.
class ConvTranspose2d : public torch::nn::Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor weight;
  at::Tensor bias;
  int64_t stride;
};

// nn.BatchNorm2d in eval mode (running statistics), on NCHW input.
class BatchNorm2d : public torch::nn::Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5);
  at::Tensor forward(const at::Tensor& x) const;
  // Returns (scale, shift) with forward(x) == x * scale + shift per channel, in fp32.
  std::pair<at::Tensor, at::Tensor> Folded() const;

  at::Tensor weight;
  at::Tensor bias;
  at::Tensor running_mean;
  at::Tensor running_var;
  at::Tensor num_batches_tracked;  // int64 scalar, unused at inference
  double eps;
};

// While alive, modules constructed on this thread allocate their parameters and buffers on
// `device`. With at::kMeta the layout of InternImage-H/G (several GB of weights) can be inspected
// without allocating it. Not copyable; nests.
class ScopedParameterDevice {
 public:
  explicit ScopedParameterDevice(at::Device device);
  ~ScopedParameterDevice();
  ScopedParameterDevice(const ScopedParameterDevice&) = delete;
  ScopedParameterDevice& operator=(const ScopedParameterDevice&) = delete;

 private:
  at::Device previous_;
};

// Returns float32 options on the device selected by ScopedParameterDevice (CPU by default).
at::TensorOptions ParameterOptions();

// Registers `child` under parent.<name>.<index>, reproducing the key of an nn.Sequential whose
// other entries are parameterless (e.g. the official `norm1.1.weight`, where entry 0 is a permute).
// Returns `child`.
template <typename M>
std::shared_ptr<M> RegisterIndexed(torch::nn::Module& parent, const std::string& name, int index,
                                   std::shared_ptr<M> child) {
  auto container = parent.register_module(name, std::make_shared<torch::nn::Module>());
  container->register_module(std::to_string(index), child);
  return child;
}

// Fills every floating-point parameter and buffer of `module` with deterministic pseudo-random
// values derived from `seed` and the tensor's name: linear/conv weights ~ N(0, std) with std from
// the fan-in, biases small, norm weights near 1, BatchNorm statistics near (0, 1), layer-scale
// gammas in [0.5, 1.5]. The same seed gives the same weights on every run and machine.
void InitRandomWeights(torch::nn::Module& module, uint64_t seed);

}  // namespace iis::models
