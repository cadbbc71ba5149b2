#include "models/weights.h"

#include "models/checkpoint/state_dict.h"
#include "models/layers.h"

namespace iis::models {

WeightsOrigin LoadWeights(torch::nn::Module& module, const std::string& path,
                          const LoadRules& rules) {
  const checkpoint::StateDict weights = checkpoint::LoadStateDict(path);
  checkpoint::ApplyOptions options;
  options.select_prefix = rules.select_prefix;
  options.ignore_prefixes = rules.ignore_prefixes;
  checkpoint::ApplyStateDict(module, weights, options);
  return {true, path};
}

WeightsOrigin RandomWeights(torch::nn::Module& module, uint64_t seed) {
  InitRandomWeights(module, seed);
  return {false, "random(seed=" + std::to_string(seed) + ")"};
}

}  // namespace iis::models
