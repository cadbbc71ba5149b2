// The LibTorch side of the runtime: building the models of models/ and running their forward
// passes (server/runtime/libtorch_backend.h).
#include "server/runtime/libtorch_backend.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/thread_pool.h"
#include "models/classification/classifier.h"
#include "models/dense_batch.h"
#include "models/detection/mask_rcnn.h"
#include "models/placement.h"
#include "models/preprocess/preprocess.h"
#include "models/registry.h"
#include "models/segmentation/upernet.h"
#include "models/weights.h"
#include "opencv2/core/utility.hpp"
#include "ops/ops_registry.h"

#if defined(IIS_RUNTIME_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace iis::runtime {
namespace {

using internimage::serving::v1::ModelConfig;

// Pads and stacks the images of a batch as the official collate does (zeros at the bottom and
// right up to the batch's largest size rounded up to `divisor`); equal sizes and divisor 1 stack.
at::Tensor Collate(const std::vector<NetworkInput>& batch, int divisor) {
  std::vector<at::Tensor> images;
  images.reserve(batch.size());
  for (const auto& in : batch) images.push_back(models::ImageTensor(*in.image));
  return models::CollateImages(images, divisor);
}

std::vector<models::DenseImageMeta> Metas(const std::vector<NetworkInput>& batch) {
  std::vector<models::DenseImageMeta> metas;
  metas.reserve(batch.size());
  for (const auto& in : batch) metas.push_back(models::MetaOf(*in.image));
  return metas;
}

// The one thread that runs all LibTorch CPU work of the process: building models, loading weights,
// warm-up and every CPU forward pass. LibTorch parallelises with OpenMP, and libgomp gives every
// thread that starts parallel regions its own team of workers. With several teams alive (say,
// models prepared on the main thread and run on a batch thread) there are more OpenMP threads than
// cores, libgomp then stops spinning at its barriers and every one of the ~300 parallel regions of
// an InternImage-T forward pays for futex sleeps: batch-1 latency went from 34 to 50 ms. One
// executor thread keeps a single team. Forwards of different CPU models are serialised by it,
// which costs nothing on a machine whose cores one forward already keeps busy. Thread-safe; lives
// until the process exits.
common::ThreadPool& CpuExecutor() {
  static common::ThreadPool* executor = [] {
    common::ThreadPool::Options options;
    options.num_threads = 1;
    common::ThreadPool* pool = common::ThreadPool::Create(options).value().release();
    pool->Schedule([] { at::init_num_threads(); });
    return pool;
  }();
  return *executor;
}

// Runs `fn` where LibTorch work for `device` belongs: the CPU executor, or the calling thread for
// CUDA devices (their forwards do not compete for OpenMP teams).
template <typename Fn>
auto OnDevice(const at::Device& device, Fn&& fn) -> decltype(fn()) {
  if (device.is_cpu()) return CpuExecutor().RunAndWait(std::forward<Fn>(fn));
  return fn();
}

// A network whose forward passes run on one device: Run switches to where LibTorch work for that
// device belongs (OnDevice) and calls RunHere there.
class DeviceNetwork : public Network {
 public:
  explicit DeviceNetwork(at::Device device) : device_(device) {}

  std::vector<NetworkOutput> Run(const std::vector<NetworkInput>& batch) final {
    return OnDevice(device_, [&] { return RunHere(batch); });
  }

  std::string device() const final { return device_.str(); }

 protected:
  // Runs the batch on device_, on the thread OnDevice chose. Throws what the model throws.
  virtual std::vector<NetworkOutput> RunHere(const std::vector<NetworkInput>& batch) const = 0;

 private:
  const at::Device device_;
};

class ClassificationNetwork final : public DeviceNetwork {
 public:
  ClassificationNetwork(std::shared_ptr<const models::classification::Classifier> model,
                        at::Device device)
      : DeviceNetwork(device), model_(std::move(model)) {}

 private:
  // Images of one size run as one forward pass; a batch that mixes sizes (raw tensors may have
  // any size) runs one pass per size, since padding would change a globally pooled answer.
  std::vector<NetworkOutput> RunHere(const std::vector<NetworkInput>& batch) const override {
    std::map<std::pair<int, int>, std::vector<size_t>> by_size;
    for (size_t i = 0; i < batch.size(); ++i) {
      by_size[{batch[i].image->height, batch[i].image->width}].push_back(i);
    }
    std::vector<NetworkOutput> outs(batch.size());
    for (const auto& [size, members] : by_size) {
      std::vector<NetworkInput> group;
      for (size_t i : members) group.push_back(batch[i]);
      const at::Tensor probs = at::softmax(model_->Logits(Collate(group, 1)), 1).contiguous();
      const int64_t classes = probs.size(1);
      for (size_t j = 0; j < members.size(); ++j) {
        const float* row = probs.data_ptr<float>() + j * classes;
        outs[members[j]].classification.probabilities.assign(row, row + classes);
      }
    }
    return outs;
  }

  std::shared_ptr<const models::classification::Classifier> model_;
};

// Mask R-CNN. One forward pass serves the whole batch with the most permissive options any of its
// requests asked for; each request's own threshold and count are applied in postprocessing (a
// higher threshold or a lower count only drops detections, it never changes the others).
class DetectionNetwork final : public DeviceNetwork {
 public:
  DetectionNetwork(std::shared_ptr<const models::detection::MaskRcnn> model, at::Device device,
                   int size_divisor)
      : DeviceNetwork(device), model_(std::move(model)), divisor_(size_divisor) {}

 private:
  std::vector<NetworkOutput> RunHere(const std::vector<NetworkInput>& batch) const override {
    models::detection::DetectionOptions options;
    options.masks = false;
    for (const auto& in : batch) {
      const auto* o = std::get_if<DetectOptions>(in.options);
      options.masks |= o == nullptr || o->masks;
    }
    const auto metas = Metas(batch);
    const auto dets = model_->Detect(Collate(batch, divisor_), metas, options);
    std::vector<NetworkOutput> outs(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      DetectionOutput& d = outs[i].detection;
      d.image_width = static_cast<int>(metas[i].original_width);
      d.image_height = static_cast<int>(metas[i].original_height);
      d.scale_x = metas[i].scale_x;
      d.scale_y = metas[i].scale_y;
      const at::Tensor boxes = dets[i].boxes.contiguous();
      const at::Tensor scores = dets[i].scores.contiguous();
      const at::Tensor labels = dets[i].labels.contiguous();
      const at::Tensor masks =
          dets[i].mask_probs.defined() ? dets[i].mask_probs.contiguous() : at::Tensor();
      const int64_t k = boxes.size(0);
      d.mask_size = masks.defined() ? static_cast<int>(masks.size(1)) : 28;
      for (int64_t j = 0; j < k; ++j) {
        DetectionOutput::Object o;
        const float* b = boxes.data_ptr<float>() + 4 * j;
        o.x1 = b[0], o.y1 = b[1], o.x2 = b[2], o.y2 = b[3];
        o.score = scores.data_ptr<float>()[j];
        o.label = static_cast<int>(labels.data_ptr<int64_t>()[j]);
        if (masks.defined()) {
          const float* m = masks.data_ptr<float>() + j * d.mask_size * d.mask_size;
          o.mask_probs.assign(m, m + d.mask_size * d.mask_size);
        }
        d.objects.push_back(std::move(o));
      }
    }
    return outs;
  }

  std::shared_ptr<const models::detection::MaskRcnn> model_;
  int divisor_;
};

// UperNet: label maps at each image's original size.
class SegmentationNetwork final : public DeviceNetwork {
 public:
  SegmentationNetwork(std::shared_ptr<const models::segmentation::UperNet> model, at::Device device,
                      int size_divisor)
      : DeviceNetwork(device), model_(std::move(model)), divisor_(size_divisor) {}

 private:
  std::vector<NetworkOutput> RunHere(const std::vector<NetworkInput>& batch) const override {
    const auto segs = model_->Segment(Collate(batch, divisor_), Metas(batch));
    std::vector<NetworkOutput> outs(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      const at::Tensor map = segs[i].label_map.contiguous();
      SegmentationOutput& s = outs[i].segmentation;
      s.height = static_cast<int>(map.size(0));
      s.width = static_cast<int>(map.size(1));
      s.labels.assign(map.data_ptr<uint8_t>(), map.data_ptr<uint8_t>() + map.numel());
    }
    return outs;
  }

  std::shared_ptr<const models::segmentation::UperNet> model_;
  int divisor_;
};

// Returns the device instance `instance` of a model placed at `spec` runs on ("auto": CUDA when
// present, else the CPU; "cuda" without an index: instances spread over the GPUs). Errors:
// INVALID_ARGUMENT when the device does not exist here.
absl::StatusOr<at::Device> ResolveDevice(const models::DeviceSpec& spec, const std::string& text,
                                         int instance) {
  const int gpus = at::hasCUDA() ? static_cast<int>(at::getNumGPUs()) : 0;
  switch (spec.kind) {
    case models::DeviceSpec::Kind::kCpu:
      return at::Device(at::kCPU);
    case models::DeviceSpec::Kind::kAuto:
      if (gpus == 0) return at::Device(at::kCPU);
      return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(instance % gpus));
    case models::DeviceSpec::Kind::kCuda:
      break;
  }
  if (gpus == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("device \"", text, "\" requested but this build/machine has no CUDA device"));
  }
  if (spec.index < 0) return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(instance % gpus));
  if (spec.index >= gpus) {
    return absl::InvalidArgumentError(
        absl::StrCat("device \"", text, "\" does not exist (", gpus, " CUDA devices)"));
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(spec.index));
}

// Returns the LibTorch dtype of `precision` on `device`. Errors: INVALID_ARGUMENT when the
// precision cannot run there (models::PrecisionProblem).
absl::StatusOr<at::ScalarType> ResolvePrecision(models::Precision precision,
                                                const at::Device& device) {
  const std::string problem =
      models::PrecisionProblem(precision, device.is_cuda() ? models::DeviceSpec::Kind::kCuda
                                                           : models::DeviceSpec::Kind::kCpu);
  if (!problem.empty()) return absl::InvalidArgumentError(problem);
  switch (precision) {
    case models::Precision::kFloat16:
      return at::kHalf;
    case models::Precision::kBFloat16:
      return at::kBFloat16;
    case models::Precision::kFloat32:
      break;
  }
  return at::kFloat;
}

// Fills `module` from the configured weights, or with seeded random ones (warning in the log).
absl::StatusOr<models::WeightsOrigin> FillWeights(torch::nn::Module& module,
                                                  const ModelConfig& config,
                                                  const models::LoadRules& rules) {
  if (config.weights().empty()) {
    models::WeightsOrigin origin = models::RandomWeights(module, config.random_seed());
    common::Log(common::LogSeverity::kWarning,
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

// Returns the memory LibTorch's caching allocator holds on every CUDA device (nothing without a
// CUDA LibTorch).
std::vector<Metrics::GpuMemory> SampleGpuMemory() {
  std::vector<Metrics::GpuMemory> out;
#if defined(IIS_RUNTIME_WITH_CUDA)
  const int gpus = at::hasCUDA() ? static_cast<int>(at::getNumGPUs()) : 0;
  for (int d = 0; d < gpus; ++d) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(d);
    Metrics::GpuMemory use;
    use.device = "cuda:" + std::to_string(d);
    use.allocated_bytes = stats.allocated_bytes[0].current;  // [0]: StatType::AGGREGATE
    use.reserved_bytes = stats.reserved_bytes[0].current;
    out.push_back(std::move(use));
  }
#endif
  return out;
}

// Builds one `Model` per device for the instances of `config` (CPU instances share one: the
// forward is reentrant), filled with the configured weights (or seeded random ones) and prepared,
// and appends a `Net(model, device, net_args...)` per instance to `loaded`.
template <typename Model, typename Net, typename... NetArgs>
absl::Status BuildInstances(const ModelConfig& config, const models::Architecture& arch,
                            const models::LoadRules& rules, LoadedModel* loaded,
                            NetArgs... net_args) {
  const std::optional<models::DeviceSpec> spec = models::ParseDevice(config.device());
  const std::optional<models::Precision> precision = models::ParsePrecision(config.precision());
  if (!spec.has_value() || !precision.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device \"", config.device(), "\" or precision \"", config.precision(),
                     "\" is not valid (expected ", std::string(models::kDeviceSyntax), "; ",
                     std::string(models::kPrecisionSyntax), ")"));
  }
  const int instances = std::max(1, config.instances());
  std::map<std::string, std::shared_ptr<const Model>> per_device;
  for (int i = 0; i < instances; ++i) {
    auto device = ResolveDevice(*spec, config.device(), i);
    if (!device.ok()) return device.status();
    auto dtype = ResolvePrecision(*precision, *device);
    if (!dtype.ok()) return dtype.status();
    const std::string name = device->str();
    if (!per_device.count(name)) {
      std::shared_ptr<Model> model;
      // Built on the device's thread too: filling parameters may already run parallel regions.
      absl::Status status = OnDevice(*device, [&]() -> absl::Status {
        model = std::make_shared<Model>(arch);
        auto origin = FillWeights(model->network(), config, rules);
        if (!origin.ok()) return origin.status();
        loaded->metadata.real_weights = origin->real;
        loaded->metadata.weights_source = origin->description;
        models::RunOptions options;
        options.device = *device;
        options.dtype = *dtype;
        model->Prepare(options);
        return absl::OkStatus();
      });
      if (!status.ok()) return status;
      per_device[name] = std::move(model);
    }
    loaded->instances.push_back(std::make_unique<Net>(per_device[name], *device, net_args...));
    loaded->metadata.devices.push_back(name);
  }
  return absl::OkStatus();
}

// Builds the model of `config` (see ModelLoader).
absl::StatusOr<LoadedModel> LoadModel(const ModelConfig& config) {
  const models::Architecture* arch = models::FindArchitecture(config.architecture());
  if (arch == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown architecture \"", config.architecture(), "\""));
  }
  LoadedModel loaded;
  ModelMetadata& md = loaded.metadata;
  md.name = config.name();
  md.architecture = arch->name;
  md.version = config.version();
  md.task = arch->task;
  md.class_names = *arch->class_names;
  md.precision = config.precision().empty() ? "float32" : config.precision();
  loaded.preprocess = models::preprocess::SpecFor(*arch);
  if (arch->task == Task::kClassification) {
    md.input_width = md.input_height = arch->input_size;
  } else {
    md.input_width = arch->scale_long;
    md.input_height = arch->scale_short;
  }
  try {
    absl::Status status;
    switch (arch->task) {
      case Task::kClassification:
        status = BuildInstances<models::classification::Classifier, ClassificationNetwork>(
            config, *arch, {}, &loaded);
        break;
      case Task::kDetection:
        status = BuildInstances<models::detection::MaskRcnn, DetectionNetwork>(
            config, *arch, {}, &loaded, arch->size_divisor);
        break;
      case Task::kSegmentation:
        status = BuildInstances<models::segmentation::UperNet, SegmentationNetwork>(
            config, *arch, models::segmentation::UperNet::CheckpointRules(), &loaded,
            arch->size_divisor);
        break;
    }
    if (!status.ok()) return status;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("building model \"", config.name(),
                                            "\" failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("building model \"", config.name(), "\" failed: ", e.what()));
  }
  return loaded;
}

}  // namespace

RuntimeBackend LibTorchBackend(int cpu_inference_threads) {
  if (cpu_inference_threads > 0) at::set_num_threads(cpu_inference_threads);
  // Preprocessing runs one image per worker thread; OpenCV's own (TBB) threads would only add
  // more threads competing for the cores the forward passes use.
  cv::setNumThreads(1);
  RuntimeBackend backend;
  backend.load_model = [](const ModelConfig& config) -> absl::StatusOr<LoadedModel> {
    // A libiis_ops linked without its kernels fails here, before any model is built.
    static const absl::Status ops = [] {
      try {
        ops::CheckOpsRegistered();
        return absl::OkStatus();
      } catch (const c10::Error& e) {
        return absl::InternalError(e.what_without_backtrace());
      }
    }();
    if (!ops.ok()) return ops;
    return LoadModel(config);
  };
  backend.sample_gpu_memory = SampleGpuMemory;
  return backend;
}

}  // namespace iis::runtime
