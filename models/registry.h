// The model architectures this project serves, by their official config names.
//
// An architecture fixes the network (backbone variant and head), the test-time preprocessing
// and the label set. No LibTorch or OpenCV here: the server's config validation and the front end
// can look names up cheaply. Immutable and thread-safe.
#pragma once

#include <string>
#include <vector>

#include "models/backbone/internimage_config.h"

namespace iis::models {

enum class ModelTask { kClassification, kDetection, kSegmentation };

struct Architecture {
  std::string name;     // official config name, e.g. "internimage_t_1k_224"
  ModelTask task = ModelTask::kClassification;
  std::string variant;  // backbone variant: t, s, b, l, xl, h, g
  models::backbone::InternImageConfig backbone;
  int num_classes = 0;
  const std::vector<std::string>* class_names = nullptr;
  // Classification: the square input size (224, 384, 512, 640).
  int input_size = 0;
  // Detection/segmentation: mmcv img_scale (long edge limit, short edge target), and the size
  // divisor (padding for detection, resize-to-multiple for segmentation).
  int scale_long = 0;
  int scale_short = 0;
  int size_divisor = 32;
};

// Returns every registered architecture (classification, then detection, then segmentation).
const std::vector<Architecture>& Architectures();

// Returns the architecture called `name`, or nullptr.
const Architecture* FindArchitecture(const std::string& name);

// Returns "classification", "detection" or "segmentation".
const char* TaskName(ModelTask task);

}  // namespace iis::models
