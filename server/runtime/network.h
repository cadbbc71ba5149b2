// One execution instance of a served model, as the runtime's batch threads see it, and a loaded
// model as the runtime core receives it from its model loader.
//
// Interfaces only: the LibTorch implementations are in server/runtime/libtorch_backend.cc, the
// tests' fakes in server/runtime/testing/fake_network.h. This header is torch-free so the runtime
// core (batching, request plumbing) builds and is tested without LibTorch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "internimage/serving/v1/server_config.pb.h"
#include "models/preprocess/preprocess.h"
#include "server/engine/engine.h"

namespace iis::runtime {

// What one image of a batch produced, before per-request postprocessing.
struct ClassificationOutput {
  std::vector<float> probabilities;  // softmax over the classes
};
struct DetectionOutput {
  struct Object {
    float x1, y1, x2, y2;  // original-image pixels
    float score;
    int label;
    std::vector<float> mask_probs;  // mask_size x mask_size sigmoid probabilities (or empty)
  };
  std::vector<Object> objects;  // best first
  int mask_size = 28;
  int image_width = 0;  // the original image
  int image_height = 0;
  // The image's resize factors (mmdet scale_factor): mask paste-back reproduces mmdet's rounding.
  float scale_x = 1.0f;
  float scale_y = 1.0f;
};
struct SegmentationOutput {
  std::vector<uint8_t> labels;  // row-major class index per original pixel (models <= 256 classes)
  int width = 0;
  int height = 0;
};
struct NetworkOutput {
  ClassificationOutput classification;
  DetectionOutput detection;
  SegmentationOutput segmentation;
};

// One image of a batch with the options of its request.
struct NetworkInput {
  const models::NormalizedImage* image = nullptr;
  const TaskOptions* options = nullptr;
};

// A model replica bound to one device. Run() is called by one batch thread at a time per
// instance; different instances may run concurrently.
class Network {
 public:
  virtual ~Network() = default;
  // Runs one forward pass over `batch` (1 .. max_batch_size images; detection and segmentation
  // images may differ in size: they are padded as the official collate does). Returns one output
  // per input, in order. Throws std::exception (c10::Error included) on failure.
  virtual std::vector<NetworkOutput> Run(const std::vector<NetworkInput>& batch) = 0;
  // Returns "cpu" or "cuda:N".
  virtual std::string device() const = 0;
};

// A loaded model: its metadata and one Network per execution instance.
struct LoadedModel {
  ModelMetadata metadata;
  models::preprocess::PreprocessSpec preprocess;
  std::vector<std::unique_ptr<Network>> instances;
};

// Builds the model of `config` (defaults applied): architecture, weights, device placement,
// precision, one Network per instance. The runtime core calls it once per configured model, on the
// thread that creates the engine. Errors it should use: INVALID_ARGUMENT (unknown architecture,
// device or precision not available), NOT_FOUND (weights file missing), FAILED_PRECONDITION
// (weights do not fit the model), INTERNAL.
using ModelLoader =
    std::function<absl::StatusOr<LoadedModel>(const internimage::serving::v1::ModelConfig&)>;

}  // namespace iis::runtime
