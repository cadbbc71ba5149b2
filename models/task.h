// The three tasks a served model performs. The one Task type of the C++ code: the registry, the
// engine interface, the runtime and the front end share it (the wire has its own enum in
// vision.proto, converted in one place by the front end). Dependency-free.
#pragma once

#include <string_view>

namespace iis::models {

enum class Task { kClassification, kDetection, kSegmentation };

// Returns "classification", "detection" or "segmentation".
constexpr std::string_view TaskName(Task task) {
  switch (task) {
    case Task::kDetection:
      return "detection";
    case Task::kSegmentation:
      return "segmentation";
    case Task::kClassification:
      break;
  }
  return "classification";
}

}  // namespace iis::models
