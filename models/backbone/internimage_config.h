// Architecture hyper-parameters of the InternImage backbone, with the official variants.
//
// Field names follow the official implementation's constructor arguments so configurations can
// be checked against the official configs line by line. Thread-safe (plain values).
#pragma once

#include <string>
#include <vector>

namespace iis::models::backbone {

struct InternImageConfig {
  // Width of level 0; level i has channels * 2^i.
  int channels = 64;
  // Blocks per level.
  std::vector<int> depths = {4, 4, 18, 4};
  // DCNv3 groups per level (channels per group = width / groups).
  std::vector<int> groups = {4, 8, 16, 32};
  double mlp_ratio = 4.0;
  // Creates the per-block gamma1/gamma2 parameters (their values come from the checkpoint).
  bool layer_scale = false;
  // DCNv3 offset_scale (1.0 for T/S/B/H/G, 2.0 for L/XL).
  double offset_scale = 1.0;
  // Post-norm residual blocks (S/B/L/XL/G); otherwise pre-norm.
  bool post_norm = false;
  // InternImage-H/G only.
  int dw_kernel_size = 3;
  bool res_post_norm = false;
  bool center_feature_scale = false;
  bool remove_center = false;
  // Level-2 post norms after these block indices (H/G); empty for none.
  std::vector<int> level2_post_norm_block_ids;
  // Classification head: conv_head + head (T..XL) or the attention-pooling clip projector (H/G).
  bool use_clip_projector = false;
  // conv_head widens the last level by this factor (official cls_scale).
  double cls_scale = 1.5;

  // Returns the width of `level` (0..3).
  int LevelChannels(int level) const { return channels << level; }
  // Returns the total number of InternImageLayer blocks.
  int NumBlocks() const;
  // Returns true when level `level` ends with a LayerNorm (official: not post_norm, or
  // center_feature_scale).
  bool HasLevelNorm() const { return !post_norm || center_feature_scale; }
};

// Returns the official classification backbone configuration of a variant: "t", "s", "b", "l",
// "xl", "h" or "g" (the yaml files under classification/configs of the official repository).
// Throws std::invalid_argument for anything else.
InternImageConfig OfficialClassificationConfig(const std::string& variant);

// Returns the backbone configuration the official detection and segmentation configs use for a
// variant ("t", "s", "b", "l", "xl"): layer_scale on, post_norm for all but T, no classifier.
InternImageConfig OfficialDenseConfig(const std::string& variant);

// Throws std::invalid_argument naming the field when the configuration is inconsistent (depths and
// groups of 4 levels, widths divisible by groups, positive sizes, block ids in range).
void ValidateConfig(const InternImageConfig& config);

}  // namespace iis::models::backbone
