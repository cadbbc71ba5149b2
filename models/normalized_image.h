// The output of preprocessing and the input of the networks: one normalised image and how it maps
// back to the original picture. Plain data (no OpenCV, no LibTorch), shared by models/preprocess,
// the dense models' batching (models/dense_batch.h) and the runtime.
#pragma once

#include <vector>

namespace iis::models {

// A network-ready image: float32 CHW planes (R, G, B), normalised.
struct NormalizedImage {
  std::vector<float> chw;
  int height = 0;  // network input size before any batch padding
  int width = 0;
  int original_height = 0;
  int original_width = 0;
  // mmdetection's scale_factor: float32(new_w / w), float32(new_h / h). 1 for classification.
  float scale_x = 1.0f;
  float scale_y = 1.0f;
};

}  // namespace iis::models
