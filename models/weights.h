// Filling a model with weights: a checkpoint file (strict) or seeded random values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace iis::models {

struct WeightsOrigin {
  bool real = false;        // true when loaded from a file
  std::string description;  // the file path, or "random(seed=N)"
};

struct LoadRules {
  // Only file keys with this prefix are used, with it removed (e.g. "backbone." maps a detector
  // checkpoint onto a bare backbone); the others are skipped.
  std::string select_prefix;
  // Keys starting with any of these are ignored (e.g. "auxiliary_head." of UperNet checkpoints).
  std::vector<std::string> ignore_prefixes;
};

// Loads `path` (.pth zip written by torch.save, or .safetensors) into `module` strictly: every
// parameter and buffer must be present with its shape, and nothing else may be in the file (beyond
// ignored prefixes); all problems are reported in one error. fp16/bf16 files are converted.
// Throws checkpoint::CheckpointError (a c10::Error) whose message starts with the path.
WeightsOrigin LoadWeights(torch::nn::Module& module, const std::string& path,
                          const LoadRules& rules = {});

// Fills `module` with InitRandomWeights(seed) (see models/layers.h) and returns the origin.
WeightsOrigin RandomWeights(torch::nn::Module& module, uint64_t seed);

}  // namespace iis::models
