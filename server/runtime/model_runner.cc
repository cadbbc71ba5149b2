#include "server/runtime/model_runner.h"

#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/config/server_config.h"
#include "server/runtime/postprocess.h"

namespace iis::runtime {

struct ModelRunner::Job : public BatchTask {
  std::unique_ptr<InferenceRequest> request;
  models::NormalizedImage image;
  absl::Time preprocess_start;
  absl::Time preprocess_end;

  absl::Time deadline() const override { return request->deadline; }
  bool IsCancelled() const override { return request->is_cancelled && request->is_cancelled(); }
};

namespace {

// Decodes and preprocesses the request's image. Errors: INVALID_ARGUMENT.
absl::StatusOr<models::NormalizedImage> PrepareImage(
    const ImageInput& in, Task task_kind, const models::preprocess::PreprocessSpec& spec) {
  try {
    switch (in.kind) {
      case ImageInput::Kind::kEncoded: {
        // Classification reads images as PIL does (no EXIF rotation); detection and segmentation
        // as mmcv/OpenCV do (EXIF orientation applied).
        const cv::Mat bgr =
            models::preprocess::DecodeImage(in.bytes, task_kind != Task::kClassification);
        return models::preprocess::Preprocess(bgr, /*is_rgb=*/false, spec);
      }
      case ImageInput::Kind::kRgb8: {
        if (in.bytes.size() != static_cast<size_t>(in.height) * in.width * 3) {
          return absl::InvalidArgumentError("raw image bytes do not match its shape");
        }
        const cv::Mat rgb(in.height, in.width, CV_8UC3, const_cast<char*>(in.bytes.data()));
        return models::preprocess::Preprocess(rgb, /*is_rgb=*/true, spec);
      }
      case ImageInput::Kind::kNormalizedChw: {
        const size_t n = static_cast<size_t>(in.height) * in.width * 3;
        if (in.bytes.size() != n * sizeof(float)) {
          return absl::InvalidArgumentError("float32 tensor bytes do not match its shape");
        }
        models::NormalizedImage img;
        img.chw.resize(n);
        std::memcpy(img.chw.data(), in.bytes.data(), in.bytes.size());
        // A NaN or infinity would propagate into every answer (NaN scores are no probabilities).
        for (size_t i = 0; i < n; ++i) {
          if (!std::isfinite(img.chw[i])) {
            const size_t plane = static_cast<size_t>(in.height) * in.width;
            return absl::InvalidArgumentError(
                absl::StrCat("image.tensor.data holds a non-finite value (", img.chw[i],
                             ") at channel ", i / plane, ", row ", i % plane / in.width,
                             ", column ", i % in.width, ": a FLOAT32_CHW tensor must be finite"));
          }
        }
        img.height = img.original_height = in.height;
        img.width = img.original_width = in.width;
        return img;
      }
    }
  } catch (const models::preprocess::PreprocessError& e) {
    return absl::InvalidArgumentError(e.what());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("preprocessing failed: ", e.what()));
  }
  return absl::InvalidArgumentError("unknown image kind");
}

}  // namespace

ModelRunner::ModelRunner(LoadedModel model, common::ThreadPool* pool, Metrics* metrics)
    : model_(std::move(model)), pool_(pool), metrics_(metrics->ForModel(model_.metadata.name)) {}

ModelRunner::~ModelRunner() {
  if (queue_) (void)queue_->Drain(absl::Now());
}

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(
    LoadedModel model, const internimage::serving::v1::ModelConfig& config,
    common::ThreadPool* pool, Metrics* metrics) {
  std::unique_ptr<ModelRunner> runner(new ModelRunner(std::move(model), pool, metrics));
  BatchQueueOptions options = BatchQueueOptionsFor(config);
  options.name = runner->model_.metadata.name;
  options.num_instances = static_cast<int>(runner->model_.instances.size());
  // A lone request does not wait for company that is not coming (see the option).
  options.delay_only_while_tasks_are_reserved = true;
  ModelRunner* self = runner.get();
  auto queue = BatchQueue<Job>::Create(
      options,
      [self](int instance, std::vector<std::unique_ptr<Job>> batch) {
        self->ProcessBatch(instance, std::move(batch));
      },
      [self](std::unique_ptr<Job> task, absl::Status status) {
        self->Drop(std::move(task), std::move(status));
      });
  if (!queue.ok()) return queue.status();
  runner->queue_ = *std::move(queue);
  BatchingSettings& b = runner->model_.metadata.batching;
  b.max_batch_size = options.max_batch_size;
  b.max_queue_delay = options.max_queue_delay;
  b.preferred_batch_sizes = options.preferred_batch_sizes;
  b.max_queue_size = options.max_queue_size;
  return runner;
}

absl::Status ModelRunner::Warmup(int iterations) {
  const ModelMetadata& md = model_.metadata;
  models::NormalizedImage img;
  if (md.task == Task::kClassification) {
    img.height = img.width = md.input_height;
  } else {
    // A typical resized photograph: 4:3 at the short-edge target, rounded to the divisor.
    img.height = model_.preprocess.scale_short;
    img.width = (model_.preprocess.scale_short * 4 / 3 + 31) / 32 * 32;
  }
  img.original_height = img.height;
  img.original_width = img.width;
  img.chw.assign(static_cast<size_t>(3) * img.height * img.width, 0.0f);
  TaskOptions options;
  if (md.task == Task::kDetection) options = DetectOptions{};
  if (md.task == Task::kSegmentation) options = SegmentOptions{};
  std::vector<int> sizes = {1};
  if (md.task == Task::kClassification && md.batching.max_batch_size > 1) {
    sizes.push_back(md.batching.max_batch_size);
  }
  for (size_t i = 0; i < model_.instances.size(); ++i) {
    for (int it = 0; it < iterations; ++it) {
      for (int n : sizes) {
        std::vector<NetworkInput> batch(n, NetworkInput{&img, &options});
        try {
          model_.instances[i]->Run(batch);
        } catch (const std::exception& e) {
          return absl::InternalError(
              absl::StrCat("warm-up of model ", md.name, " failed: ", e.what()));
        }
      }
    }
  }
  return absl::OkStatus();
}

void ModelRunner::Submit(std::unique_ptr<InferenceRequest> request) {
  absl::StatusOr<BatchReservation> slot = queue_->Reserve();
  if (!slot.ok()) {
    request->done(slot.status());
    return;
  }
  metrics_->AddQueueDepth(1);
  auto task = std::make_unique<Job>();
  task->request = std::move(request);
  // The pool runs the CPU-heavy decode and resize, never the batch threads.
  pool_->Schedule([this, slot = *std::move(slot), task = std::move(task)]() mutable {
    Preprocess(std::move(slot), std::move(task));
  });
}

void ModelRunner::Preprocess(BatchReservation reservation, std::unique_ptr<Job> task) {
  task->preprocess_start = absl::Now();
  if (task->IsCancelled()) {
    metrics_->AddQueueDepth(-1);
    task->request->done(absl::CancelledError("request cancelled before preprocessing"));
    return;
  }
  absl::StatusOr<models::NormalizedImage> img =
      PrepareImage(task->request->image, model_.metadata.task, model_.preprocess);
  task->preprocess_end = absl::Now();
  metrics_->ObservePreprocess(task->preprocess_end - task->preprocess_start);
  if (!img.ok()) {
    metrics_->AddQueueDepth(-1);
    task->request->done(img.status());
    return;  // the reservation is given back by its destructor
  }
  task->image = *std::move(img);
  queue_->Schedule(std::move(reservation), std::move(task));
}

void ModelRunner::Drop(std::unique_ptr<Job> task, absl::Status status) {
  metrics_->AddQueueDepth(-1);
  task->request->done(std::move(status));
}

std::vector<NetworkOutput> ModelRunner::RunGuarded(int instance, const std::vector<Job*>& tasks,
                                                   std::vector<absl::Status>* errors) {
  std::vector<NetworkInput> inputs;
  inputs.reserve(tasks.size());
  for (Job* t : tasks) inputs.push_back({&t->image, &t->request->options});
  errors->assign(tasks.size(), absl::OkStatus());
  try {
    return model_.instances[instance]->Run(inputs);
  } catch (const std::exception& e) {
    if (tasks.size() == 1) {
      (*errors)[0] = absl::InternalError(absl::StrCat("inference failed: ", e.what()));
      return std::vector<NetworkOutput>(1);
    }
  }
  // The batch failed: run each request alone so only the one at fault fails.
  std::vector<NetworkOutput> outputs(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    std::vector<absl::Status> one;
    std::vector<NetworkOutput> out = RunGuarded(instance, {tasks[i]}, &one);
    outputs[i] = std::move(out[0]);
    (*errors)[i] = one[0];
  }
  return outputs;
}

void ModelRunner::ProcessBatch(int instance, std::vector<std::unique_ptr<Job>> batch) {
  const absl::Time start = absl::Now();
  metrics_->AddQueueDepth(-static_cast<int>(batch.size()));
  std::vector<Job*> tasks;
  for (auto& t : batch) tasks.push_back(t.get());
  std::vector<absl::Status> errors;
  std::vector<NetworkOutput> outputs = RunGuarded(instance, tasks, &errors);
  const absl::Time end = absl::Now();
  const int n = static_cast<int>(batch.size());
  metrics_->ObserveBatch(end - start, n);
  for (int i = 0; i < n; ++i) {
    if (!errors[i].ok()) {
      batch[i]->request->done(errors[i]);
      continue;
    }
    pool_->Schedule([this, task = std::move(batch[i]), output = std::move(outputs[i]), start, end,
                     n]() mutable { Complete(std::move(task), std::move(output), start, end, n); });
  }
}

void ModelRunner::Complete(std::unique_ptr<Job> task, NetworkOutput output,
                           absl::Time forward_start, absl::Time forward_end, int batch_size) {
  const absl::Time post_start = absl::Now();
  InferenceRequest& req = *task->request;
  const ModelMetadata& md = model_.metadata;
  InferenceResponse response;
  response.model = md.name;
  response.model_version = md.version;
  response.batch_size = batch_size;
  try {
    switch (md.task) {
      case Task::kClassification: {
        const auto* o = std::get_if<ClassifyOptions>(&req.options);
        response.result = TopClasses(output.classification, o ? o->top_k : 0, md.class_names);
        break;
      }
      case Task::kDetection: {
        const auto* o = std::get_if<DetectOptions>(&req.options);
        response.result =
            ToDetectResult(output.detection, o ? *o : DetectOptions{}, md.class_names);
        break;
      }
      case Task::kSegmentation: {
        const auto* o = std::get_if<SegmentOptions>(&req.options);
        response.result =
            ToSegmentResult(output.segmentation, o ? o->counts_only : false, md.class_names);
        break;
      }
    }
  } catch (const std::exception& e) {
    req.done(absl::InternalError(absl::StrCat("postprocessing failed: ", e.what())));
    return;
  }
  const absl::Time end = absl::Now();
  Timing& t = response.timing;
  t.preprocess = task->preprocess_end - task->preprocess_start;
  t.queue = (forward_start - req.arrival) - t.preprocess;
  t.inference = forward_end - forward_start;
  t.postprocess = end - post_start;
  t.total = end - req.arrival;
  metrics_->ObserveQueue(t.queue);
  metrics_->ObservePostprocess(t.postprocess);
  req.done(std::move(response));
}

absl::Status ModelRunner::Drain(absl::Time deadline) { return queue_->Drain(deadline); }

}  // namespace iis::runtime
