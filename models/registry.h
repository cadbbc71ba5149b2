// The model architectures this project serves, by their official config names.
//
// An architecture fixes the network (backbone variant and head), the test-time preprocessing
// and the label set. No LibTorch or OpenCV here: the server's config validation and the front end
// can look names up cheaply. Immutable and thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "models/backbone/internimage_config.h"
#include "models/task.h"

namespace iis::models {

// Everything the server, the runtime and the tools know about an architecture comes from here: its
// task, network, input size, class names and serving defaults.
struct Architecture {
  std::string name;  // official config name, e.g. "internimage_t_1k_224"
  Task task = Task::kClassification;
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
  // Batching default of a served model (server_config.proto BatchingConfig.max_batch_size): 8 for
  // classification; 2 for detection and segmentation, whose inputs are ~25 times larger.
  int default_max_batch_size = 8;
};

// Returns every registered architecture (classification, then detection, then segmentation).
const std::vector<Architecture>& Architectures();

// Returns the architecture called `name`, or nullptr.
const Architecture* FindArchitecture(std::string_view name);

// Returns the names of the architectures of `task`, comma-separated (for error messages).
std::string ArchitectureNames(Task task);

}  // namespace iis::models
