// The LibTorch side of the runtime: building models and running their forward passes.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "models/classifier.h"
#include "models/registry.h"
#include "models/weights.h"
#include "server/frontend/logging.h"
#include "server/runtime/network.h"

namespace iis::runtime {
namespace {

using internimage::serving::v1::ModelConfig;

// Copies the images of a batch into one (N, 3, H, W) tensor, zero-padding each to the batch's
// largest size rounded up to `divisor` (bottom/right, as the official collate does); divisor 1
// with equal sizes is a plain stack.
at::Tensor Collate(const std::vector<NetworkInput>& batch, int divisor) {
  int64_t h = 0, w = 0;
  for (const auto& in : batch) {
    h = std::max<int64_t>(h, in.image->height);
    w = std::max<int64_t>(w, in.image->width);
  }
  h = (h + divisor - 1) / divisor * divisor;
  w = (w + divisor - 1) / divisor * divisor;
  const auto n = static_cast<int64_t>(batch.size());
  at::Tensor out = at::empty({n, 3, h, w}, at::kFloat);
  for (int64_t i = 0; i < n; ++i) {
    const models::NormalizedImage& img = *batch[i].image;
    at::Tensor dst = out[i];
    const at::Tensor src = at::from_blob(const_cast<float*>(img.chw.data()),
                                         {3, img.height, img.width}, at::kFloat);
    if (img.height == h && img.width == w) {
      dst.copy_(src);
    } else {
      dst.zero_();
      dst.narrow(1, 0, img.height).narrow(2, 0, img.width).copy_(src);
    }
  }
  return out;
}

// Makes sure the calling batch thread runs with the configured intra-op thread count.
void InitThreadOnce() {
  thread_local bool done = false;
  if (!done) {
    at::init_num_threads();
    done = true;
  }
}

class ClassificationNetwork final : public Network {
 public:
  ClassificationNetwork(std::shared_ptr<const models::Classifier> model, std::string device)
      : model_(std::move(model)), device_(std::move(device)) {}

  std::vector<NetworkOutput> Run(const std::vector<NetworkInput>& batch) override {
    InitThreadOnce();
    const at::Tensor probs = at::softmax(model_->Logits(Collate(batch, 1)), 1).contiguous();
    std::vector<NetworkOutput> outs(batch.size());
    const int64_t classes = probs.size(1);
    for (size_t i = 0; i < batch.size(); ++i) {
      const float* row = probs.data_ptr<float>() + i * classes;
      outs[i].classification.probabilities.assign(row, row + classes);
    }
    return outs;
  }

  std::string device() const override { return device_; }

 private:
  std::shared_ptr<const models::Classifier> model_;
  std::string device_;
};

absl::StatusOr<at::Device> ResolveDevice(const std::string& spec, int instance) {
  const int gpus = at::hasCUDA() ? static_cast<int>(at::getNumGPUs()) : 0;
  if (spec.empty() || spec == "auto") {
    if (gpus == 0) return at::Device(at::kCPU);
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(instance % gpus));
  }
  if (spec == "cpu") return at::Device(at::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    if (gpus == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("device \"", spec, "\" requested but this build/machine has no CUDA device"));
    }
    if (spec == "cuda") return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(instance % gpus));
    const int index = std::atoi(spec.c_str() + 5);
    if (index < 0 || index >= gpus) {
      return absl::InvalidArgumentError(
          absl::StrCat("device \"", spec, "\" does not exist (", gpus, " CUDA devices)"));
    }
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown device \"", spec, "\" (expected cpu, cuda, cuda:N or auto)"));
}

absl::StatusOr<at::ScalarType> ResolvePrecision(const std::string& p, const at::Device& device) {
  if (p.empty() || p == "float32") return at::kFloat;
  if (p != "float16" && p != "bfloat16") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown precision \"", p, "\" (expected float32, float16 or bfloat16)"));
  }
  if (!device.is_cuda()) {
    return absl::InvalidArgumentError(absl::StrCat("precision ", p, " needs a CUDA device"));
  }
  return p == "float16" ? at::kHalf : at::kBFloat16;
}

// Fills `module` from the configured weights, or with seeded random ones (warning in the log).
absl::StatusOr<models::WeightsOrigin> FillWeights(torch::nn::Module& module,
                                                  const ModelConfig& config,
                                                  const models::LoadRules& rules) {
  if (config.weights().empty()) {
    models::WeightsOrigin origin = models::RandomWeights(module, config.random_seed());
    Log(LogSeverity::kWarning,
        absl::StrCat("model \"", config.name(), "\" (", config.architecture(),
                     ") has no weights file: it runs on ", origin.description,
                     " and its answers are meaningless"));
    return origin;
  }
  if (!std::filesystem::exists(config.weights())) {
    return absl::NotFoundError(absl::StrCat("weights file ", config.weights(), " does not exist"));
  }
  try {
    return models::LoadWeights(module, config.weights(), rules);
  } catch (const c10::Error& e) {
    return absl::FailedPreconditionError(e.what_without_backtrace());
  }
}

}  // namespace

void SetCpuInferenceThreads(int threads) {
  if (threads > 0) at::set_num_threads(threads);
}

absl::StatusOr<LoadedModel> LoadModel(const ModelConfig& config) {
  const models::Architecture* arch = models::FindArchitecture(config.architecture());
  if (arch == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown architecture \"",
                                                   config.architecture(), "\""));
  }
  const int instances = std::max(1, config.instances());
  LoadedModel loaded;
  ModelMetadata& md = loaded.metadata;
  md.name = config.name();
  md.architecture = arch->name;
  md.version = config.version();
  md.class_names = *arch->class_names;
  md.precision = config.precision().empty() ? "float32" : config.precision();
  try {
    if (arch->task == models::ModelTask::kClassification) {
      md.task = Task::kClassification;
      md.input_width = md.input_height = arch->input_size;
      loaded.preprocess.kind = models::PreprocessKind::kClassification;
      loaded.preprocess.size = arch->input_size;
      // One set of weights per device: CPU instances share it (the forward is reentrant).
      std::map<std::string, std::shared_ptr<const models::Classifier>> per_device;
      for (int i = 0; i < instances; ++i) {
        auto device = ResolveDevice(config.device(), i);
        if (!device.ok()) return device.status();
        auto dtype = ResolvePrecision(config.precision(), *device);
        if (!dtype.ok()) return dtype.status();
        const std::string name = device->str();
        if (!per_device.count(name)) {
          auto model = std::make_shared<models::Classifier>(*arch);
          auto origin = FillWeights(model->network(), config, {});
          if (!origin.ok()) return origin.status();
          md.real_weights = origin->real;
          md.weights_source = origin->description;
          models::RunOptions options;
          options.device = *device;
          options.dtype = *dtype;
          model->Prepare(options);
          per_device[name] = std::move(model);
        }
        loaded.instances.push_back(std::make_unique<ClassificationNetwork>(per_device[name], name));
        md.devices.push_back(name);
      }
      return loaded;
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("building model \"", config.name(),
                                            "\" failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("building model \"", config.name(), "\" failed: ", e.what()));
  }
  return absl::UnimplementedError(absl::StrCat(models::TaskName(arch->task),
                                               " models are not available in the runtime yet"));
}

}  // namespace iis::runtime
