// The inputs of the 30 DCNv3 layers of InternImage-T at 224x224 (56x56x64 G4 x4, 28x28x128 G8 x4,
// 14x14x256 G16 x18, 7x7x512 G32 x4), shared by the CPU and GPU DCNv3 benchmarks. Header-only.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdint>
#include <vector>

#include "ops/dcnv3.h"

namespace iis::ops::bench {

struct Stage {
  int64_t size;
  int64_t channels;
  int64_t group;
  int64_t layers;
};
inline constexpr Stage kInternImageT[] = {
    {56, 64, 4, 4}, {28, 128, 8, 4}, {14, 256, 16, 18}, {7, 512, 32, 4}};

struct Layer {
  at::Tensor value, offset, mask, logits;
  Dcnv3Params params;         // For `mask` (iis::dcnv3).
  Dcnv3Params logits_params;  // params with mask_is_logits, for `logits` (iis::dcnv3_softmax).
};

// Returns the 30 layers' inputs for `batch` images, made on the CPU with a fixed seed and moved to
// `options` (device, dtype): value ~ N(0, 1), offsets ~ U(-2, 2) px, mask logits ~ N(0, 1) and the
// mask (their softmax over each group's points, computed in fp32).
inline std::vector<Layer> MakeInternImageTLayers(int64_t batch, const at::TensorOptions& options) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(2024);
  std::vector<Layer> layers;
  for (const Stage& s : kInternImageT) {
    for (int64_t l = 0; l < s.layers; ++l) {
      Layer layer;
      layer.params.group = s.group;
      layer.params.group_channels = s.channels / s.group;
      const int64_t gk = s.group * layer.params.Points();
      const at::Tensor logits = at::randn({batch, s.size, s.size, gk}, gen, at::kFloat);
      layer.value = at::randn({batch, s.size, s.size, s.channels}, gen, at::kFloat).to(options);
      layer.offset =
          (at::rand({batch, s.size, s.size, gk * 2}, gen, at::kFloat) * 4 - 2).to(options);
      layer.mask = at::softmax(logits.view({batch, s.size, s.size, s.group, -1}), -1)
                       .view(logits.sizes())
                       .to(options);
      layer.logits = logits.to(options);
      layer.logits_params = layer.params;
      layer.logits_params.mask_is_logits = true;
      layers.push_back(std::move(layer));
    }
  }
  return layers;
}

}  // namespace iis::ops::bench
