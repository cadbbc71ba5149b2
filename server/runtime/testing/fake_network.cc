#include "server/runtime/testing/fake_network.h"

#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"

namespace iis::runtime::testing_fakes {

void FakeNetworkControl::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

void FakeNetworkControl::Open() {
  absl::MutexLock lock(&mu_);
  closed_ = false;
}

void FakeNetworkControl::FailWith(const std::string& message) {
  absl::MutexLock lock(&mu_);
  failure_ = message;
}

bool FakeNetworkControl::WaitForHeld(int count, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_ >= count; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

std::vector<int> FakeNetworkControl::batch_sizes() const {
  absl::MutexLock lock(&mu_);
  return batch_sizes_;
}

int64_t FakeNetworkControl::images_run() const {
  absl::MutexLock lock(&mu_);
  return images_run_;
}

std::string FakeNetworkControl::Enter(int batch_size) {
  absl::MutexLock lock(&mu_);
  batch_sizes_.push_back(batch_size);
  images_run_ += batch_size;
  ++held_;
  auto open = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !closed_; };
  mu_.Await(absl::Condition(&open));
  --held_;
  return failure_;
}

FakeNetwork::FakeNetwork(Task task, int num_classes, std::shared_ptr<FakeNetworkControl> control)
    : task_(task), num_classes_(num_classes), control_(std::move(control)) {}

std::vector<NetworkOutput> FakeNetwork::Run(const std::vector<NetworkInput>& batch) {
  const std::string failure = control_->Enter(static_cast<int>(batch.size()));
  if (!failure.empty()) throw std::runtime_error(failure);
  std::vector<NetworkOutput> outputs(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    const models::NormalizedImage& image = *batch[i].image;
    const float v = image.chw.empty() ? 0.0f : image.chw[0];
    if (v == kPoison) throw std::runtime_error("the fake network cannot run a poisoned image");
    const int label = ((static_cast<int>(v) % num_classes_) + num_classes_) % num_classes_;
    NetworkOutput& out = outputs[i];
    switch (task_) {
      case Task::kClassification:
        out.classification.probabilities.assign(num_classes_, 0.0f);
        out.classification.probabilities[label] = 1.0f;
        break;
      case Task::kDetection: {
        DetectionOutput& d = out.detection;
        d.image_width = image.original_width;
        d.image_height = image.original_height;
        DetectionOutput::Object object{};
        object.x2 = static_cast<float>(image.original_width);
        object.y2 = static_cast<float>(image.original_height);
        object.score = 0.9f;
        object.label = label;
        d.objects.push_back(object);
        break;
      }
      case Task::kSegmentation: {
        SegmentationOutput& s = out.segmentation;
        s.width = image.original_width;
        s.height = image.original_height;
        s.labels.assign(static_cast<size_t>(s.width) * s.height, static_cast<uint8_t>(label));
        break;
      }
    }
  }
  return outputs;
}

ModelLoader FakeLoader(std::vector<std::pair<std::string, FakeModelSpec>> specs) {
  return [specs = std::move(specs)](
             const internimage::serving::v1::ModelConfig& config) -> absl::StatusOr<LoadedModel> {
    for (const auto& [architecture, spec] : specs) {
      if (architecture != config.architecture()) continue;
      LoadedModel loaded;
      ModelMetadata& md = loaded.metadata;
      md.architecture = architecture;
      md.task = spec.task;
      for (int c = 0; c < spec.num_classes; ++c) md.class_names.push_back(absl::StrCat("c", c));
      md.precision = "float32";
      md.weights_source = "fake";
      md.input_width = md.input_height = spec.input_size;
      switch (spec.task) {
        case Task::kClassification:
          loaded.preprocess.kind = models::preprocess::PreprocessKind::kClassification;
          loaded.preprocess.size = spec.input_size;
          break;
        case Task::kDetection:
          loaded.preprocess.kind = models::preprocess::PreprocessKind::kDetection;
          break;
        case Task::kSegmentation:
          loaded.preprocess.kind = models::preprocess::PreprocessKind::kSegmentation;
          break;
      }
      auto control = spec.control ? spec.control : std::make_shared<FakeNetworkControl>();
      for (int i = 0; i < std::max(1, config.instances()); ++i) {
        loaded.instances.push_back(
            std::make_unique<FakeNetwork>(spec.task, spec.num_classes, control));
        md.devices.push_back("cpu");
      }
      return loaded;
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unknown architecture \"", config.architecture(), "\""));
  };
}

}  // namespace iis::runtime::testing_fakes
