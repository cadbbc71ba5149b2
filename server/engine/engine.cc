#include "server/engine/engine.h"

namespace iis {

std::string_view TaskName(Task task) {
  switch (task) {
    case Task::kClassification:
      return "classification";
    case Task::kDetection:
      return "detection";
    case Task::kSegmentation:
      return "segmentation";
  }
  return "unknown";
}

}  // namespace iis
