#include "models/backbone/internimage_config.h"

#include <numeric>
#include <stdexcept>

namespace iis::models::backbone {

int InternImageConfig::NumBlocks() const {
  return std::accumulate(depths.begin(), depths.end(), 0);
}

InternImageConfig OfficialClassificationConfig(const std::string& variant) {
  InternImageConfig c;
  if (variant == "t") {
    c.channels = 64, c.depths = {4, 4, 18, 4}, c.groups = {4, 8, 16, 32};
  } else if (variant == "s") {
    c.channels = 80, c.depths = {4, 4, 21, 4}, c.groups = {5, 10, 20, 40};
    c.layer_scale = true, c.post_norm = true;
  } else if (variant == "b") {
    c.channels = 112, c.depths = {4, 4, 21, 4}, c.groups = {7, 14, 28, 56};
    c.layer_scale = true, c.post_norm = true;
  } else if (variant == "l") {
    c.channels = 160, c.depths = {5, 5, 22, 5}, c.groups = {10, 20, 40, 80};
    c.layer_scale = true, c.post_norm = true, c.offset_scale = 2.0;
  } else if (variant == "xl") {
    c.channels = 192, c.depths = {5, 5, 24, 5}, c.groups = {12, 24, 48, 96};
    c.layer_scale = true, c.post_norm = true, c.offset_scale = 2.0;
  } else if (variant == "h") {
    c.channels = 320, c.depths = {6, 6, 32, 6}, c.groups = {10, 20, 40, 80};
    c.dw_kernel_size = 5, c.res_post_norm = true, c.center_feature_scale = true;
    c.level2_post_norm_block_ids = {5, 11, 17, 23, 29};
    c.use_clip_projector = true;
  } else if (variant == "g") {
    c.channels = 512, c.depths = {2, 2, 48, 4}, c.groups = {16, 32, 64, 128};
    c.dw_kernel_size = 5, c.post_norm = true, c.center_feature_scale = true;
    c.level2_post_norm_block_ids = {5, 11, 17, 23, 29, 35, 41, 47};
    c.use_clip_projector = true;
  } else {
    throw std::invalid_argument("unknown InternImage variant '" + variant +
                                "' (expected t, s, b, l, xl, h or g)");
  }
  return c;
}

InternImageConfig OfficialDenseConfig(const std::string& variant) {
  if (variant != "t" && variant != "s" && variant != "b" && variant != "l" && variant != "xl") {
    throw std::invalid_argument("no official detection/segmentation backbone for variant '" +
                                variant + "' (expected t, s, b, l or xl)");
  }
  InternImageConfig c = OfficialClassificationConfig(variant);
  c.layer_scale = true;  // layer_scale=1.0 in every official mmdet/mmseg config
  return c;
}

void ValidateConfig(const InternImageConfig& c) {
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("InternImageConfig: " + what);
  };
  if (c.channels <= 0) fail("channels must be > 0, got " + std::to_string(c.channels));
  if (c.depths.size() != 4)
    fail("depths must have 4 entries, got " + std::to_string(c.depths.size()));
  if (c.groups.size() != 4)
    fail("groups must have 4 entries, got " + std::to_string(c.groups.size()));
  for (int i = 0; i < 4; ++i) {
    if (c.depths[i] <= 0) fail("depths[" + std::to_string(i) + "] must be > 0");
    if (c.groups[i] <= 0 || c.LevelChannels(i) % c.groups[i] != 0) {
      fail("groups[" + std::to_string(i) + "] = " + std::to_string(c.groups[i]) +
           " must divide the level width " + std::to_string(c.LevelChannels(i)));
    }
  }
  if (c.mlp_ratio <= 0) fail("mlp_ratio must be > 0");
  if (c.dw_kernel_size <= 0 || c.dw_kernel_size % 2 == 0) {
    fail("dw_kernel_size must be odd and > 0, got " + std::to_string(c.dw_kernel_size));
  }
  for (int id : c.level2_post_norm_block_ids) {
    if (id < 0 || id >= c.depths[2]) {
      fail("level2_post_norm_block_ids entry " + std::to_string(id) + " is outside level 2's " +
           std::to_string(c.depths[2]) + " blocks");
    }
  }
}

}  // namespace iis::models::backbone
