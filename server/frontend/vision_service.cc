#include "server/frontend/vision_service.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "server/frontend/status_util.h"

namespace iis {
namespace {

namespace pb = ::internimage::serving::v1;

pb::Task ToProtoTask(Task task) {
  switch (task) {
    case Task::kClassification:
      return pb::TASK_CLASSIFICATION;
    case Task::kDetection:
      return pb::TASK_DETECTION;
    case Task::kSegmentation:
      return pb::TASK_SEGMENTATION;
  }
  return pb::TASK_UNSPECIFIED;
}

int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

void FillMetadata(const InferenceResponse& answer, pb::ResponseMetadata* metadata) {
  metadata->set_model(answer.model);
  metadata->set_model_version(answer.model_version);
  metadata->set_batch_size(answer.batch_size);
  pb::Timing* timing = metadata->mutable_timing();
  timing->set_queue_us(Micros(answer.timing.queue));
  timing->set_preprocess_us(Micros(answer.timing.preprocess));
  timing->set_inference_us(Micros(answer.timing.inference));
  timing->set_postprocess_us(Micros(answer.timing.postprocess));
  timing->set_total_us(Micros(answer.timing.total));
}

void FillModelInfo(const ModelMetadata& model, pb::ModelInfo* info) {
  info->set_name(model.name);
  info->set_architecture(model.architecture);
  info->set_version(model.version);
  info->set_task(ToProtoTask(model.task));
  info->set_is_default(model.is_default);
  info->set_input_width(model.input_width);
  info->set_input_height(model.input_height);
  for (const std::string& name : model.class_names) info->add_class_names(name);
  for (const std::string& device : model.devices) info->add_devices(device);
  info->set_precision(model.precision);
  pb::BatchingInfo* batching = info->mutable_batching();
  batching->set_max_batch_size(model.batching.max_batch_size);
  batching->set_max_queue_delay_us(Micros(model.batching.max_queue_delay));
  for (int size : model.batching.preferred_batch_sizes) batching->add_preferred_batch_sizes(size);
  batching->set_max_queue_size(model.batching.max_queue_size);
  info->set_real_weights(model.real_weights);
  info->set_weights_source(model.weights_source);
}

absl::Status ResultMismatch(absl::string_view method) {
  return absl::InternalError(
      absl::StrCat("the engine answered a ", method, " call with another task's result"));
}

// The variant alternative a task's answer carries.
template <typename Result>
absl::StatusOr<const Result*> ResultOf(const InferenceResponse& answer, absl::string_view method) {
  const Result* result = std::get_if<Result>(&answer.result);
  if (result == nullptr) return ResultMismatch(method);
  return result;
}

void FillClassify(const ClassifyResult& result, pb::ClassifyResponse* response) {
  for (const ClassScore& c : result.classes) {
    pb::ClassScore* out = response->add_classes();
    out->set_class_id(c.class_id);
    out->set_label(c.label);
    out->set_score(c.score);
  }
}

void FillDetect(const DetectResult& result, pb::DetectResponse* response) {
  response->set_image_width(result.image_width);
  response->set_image_height(result.image_height);
  for (const DetectedObject& object : result.objects) {
    pb::Detection* out = response->add_detections();
    pb::BoundingBox* box = out->mutable_box();
    box->set_x1(object.x1);
    box->set_y1(object.y1);
    box->set_x2(object.x2);
    box->set_y2(object.y2);
    out->set_class_id(object.class_id);
    out->set_label(object.label);
    out->set_score(object.score);
    if (!object.mask.counts.empty()) {
      pb::Rle* mask = out->mutable_mask();
      mask->set_height(object.mask.height);
      mask->set_width(object.mask.width);
      mask->mutable_counts()->Add(object.mask.counts.begin(), object.mask.counts.end());
    }
  }
}

void FillSegment(const SegmentResult& result, pb::SegmentResponse* response) {
  response->set_width(result.width);
  response->set_height(result.height);
  response->set_label_png(result.label_png);
  for (const ClassPixels& c : result.class_pixels) {
    pb::ClassPixels* out = response->add_class_pixels();
    out->set_class_id(c.class_id);
    out->set_label(c.label);
    out->set_pixels(c.pixels);
  }
}

// Formats a client-supplied tensor shape for an error message, at most 8 dimensions of it.
std::string ShapeText(const google::protobuf::RepeatedField<int64_t>& shape) {
  constexpr int kMaxShown = 8;
  if (shape.size() <= kMaxShown) return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
  return absl::StrCat("[", absl::StrJoin(shape.begin(), shape.begin() + kMaxShown, ", "),
                      ", ...] (", shape.size(), " dimensions)");
}

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const std::chrono::system_clock::time_point deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

// The reactor of every unary call: counts the call as active until gRPC is done with it, so a
// drain can wait for answers to be sent, not only produced.
class VisionService::Reactor : public grpc::ServerUnaryReactor {
 public:
  explicit Reactor(VisionService* service) : service_(service) {
    absl::MutexLock lock(&service_->calls_mu_);
    ++service_->active_calls_;
  }
  void OnDone() override {
    {
      absl::MutexLock lock(&service_->calls_mu_);
      --service_->active_calls_;
    }
    delete this;
  }

 private:
  VisionService* const service_;
};

// One RPC on its way through a handler: answers it exactly once and records its metrics.
class VisionService::Call {
 public:
  Call(VisionService* service, grpc::CallbackServerContext* context, std::string method)
      : service_(service),
        context_(context),
        reactor_(new Reactor(service)),
        method_(std::move(method)),
        start_(absl::Now()) {}

  // Sets the model label of the metrics (a served model's name).
  void set_model(const std::string& model) { model_ = model; }

  // Records the call and finishes the RPC; nothing may touch the call's messages afterwards.
  grpc::ServerUnaryReactor* Finish(const absl::Status& status) {
    service_->metrics_->ObserveRequest(model_, method_, absl::StatusCodeToString(status.code()),
                                       absl::Now() - start_);
    grpc::ServerUnaryReactor* reactor = reactor_;
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }

  // Hands a validated request to the engine; `fill` writes a successful answer into the
  // response message. Returns the reactor for the handler to return.
  grpc::ServerUnaryReactor* Submit(Engine* engine, std::unique_ptr<InferenceRequest> request,
                                   std::function<absl::Status(const InferenceResponse&)> fill) {
    Metrics* metrics = service_->metrics_;
    metrics->AddInFlight(model_, method_, 1);
    request->deadline = DeadlineOf(*context_);
    grpc::CallbackServerContext* context = context_;
    request->is_cancelled = [context] { return context->IsCancelled(); };
    grpc::ServerUnaryReactor* reactor = reactor_;
    request->done = [call = *this,
                     fill = std::move(fill)](absl::StatusOr<InferenceResponse> answer) mutable {
      call.service_->metrics_->AddInFlight(call.model_, call.method_, -1);
      absl::Status status = answer.status();
      if (status.ok()) status = fill(*answer);
      call.Finish(status);
    };
    engine->Submit(std::move(request));
    return reactor;
  }

 private:
  VisionService* service_;
  grpc::CallbackServerContext* context_;
  grpc::ServerUnaryReactor* reactor_;
  std::string method_;
  std::string model_;  // "" until a served model is resolved
  absl::Time start_;
};

VisionService::VisionService(const ImageLimits& limits, Metrics* metrics)
    : limits_(limits), metrics_(metrics) {}

VisionService::~VisionService() = default;

absl::Status VisionService::AttachEngine(Engine* engine) {
  auto attached = std::make_unique<Attached>(Attached{engine, ModelCatalog(engine->ListModels())});
  const Attached* expected = nullptr;
  if (!attached_.compare_exchange_strong(expected, attached.get())) {
    return absl::FailedPreconditionError("an engine is already attached");
  }
  attached_owner_ = std::move(attached);
  return absl::OkStatus();
}

void VisionService::StartDrain() { draining_.store(true); }

bool VisionService::WaitForCalls(absl::Time deadline) {
  absl::MutexLock lock(&calls_mu_);
  auto none_active = [this] { return active_calls_ == 0; };
  return calls_mu_.AwaitWithDeadline(absl::Condition(&none_active), deadline);
}

absl::StatusOr<const VisionService::Attached*> VisionService::Ready() const {
  if (draining_.load()) return absl::UnavailableError("server is shutting down");
  const Attached* attached = attached_.load();
  if (attached == nullptr) {
    return absl::UnavailableError("server is starting: models are still loading");
  }
  return attached;
}

absl::StatusOr<const ModelMetadata*> VisionService::ResolveModel(const Attached& attached,
                                                                 Task task, const std::string& name,
                                                                 Call& call) const {
  const ModelMetadata* served = nullptr;
  absl::StatusOr<const ModelMetadata*> model = attached.catalog.Resolve(task, name, &served);
  if (served != nullptr) call.set_model(served->name);
  return model;
}

absl::StatusOr<ImageInput> VisionService::ToImageInput(const pb::Image& image,
                                                       const ModelMetadata& model) const {
  ImageInput input;
  switch (image.source_case()) {
    case pb::Image::kEncoded: {
      const std::string& bytes = image.encoded();
      if (bytes.empty()) return absl::InvalidArgumentError("image.encoded is empty (0 bytes)");
      absl::StatusOr<ImageHeader> header = ProbeImageHeader(bytes);
      if (!header.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("image.encoded: ", header.status().message()));
      }
      if (absl::Status size = CheckImageSize(header->width, header->height, limits_); !size.ok()) {
        return size;
      }
      input.kind = ImageInput::Kind::kEncoded;
      input.bytes = bytes;
      return input;
    }
    case pb::Image::kTensor: {
      const pb::RawTensor& tensor = image.tensor();
      const auto& shape = tensor.shape();
      auto shape_text = [&shape] { return ShapeText(shape); };
      int64_t height = 0, width = 0, element_bytes = 0;
      if (tensor.format() == pb::RawTensor::UINT8_HWC_RGB) {
        if (shape.size() != 3 || shape[2] != 3) {
          return absl::InvalidArgumentError(
              absl::StrCat("image.tensor.shape must be [height, width, 3] for UINT8_HWC_RGB, got ",
                           shape_text()));
        }
        height = shape[0];
        width = shape[1];
        element_bytes = 1;
        input.kind = ImageInput::Kind::kRgb8;
      } else if (tensor.format() == pb::RawTensor::FLOAT32_CHW) {
        if (shape.size() != 3 || shape[0] != 3) {
          return absl::InvalidArgumentError(absl::StrCat(
              "image.tensor.shape must be [3, height, width] for FLOAT32_CHW, got ", shape_text()));
        }
        height = shape[1];
        width = shape[2];
        element_bytes = 4;
        input.kind = ImageInput::Kind::kNormalizedChw;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("image.tensor.format must be UINT8_HWC_RGB or FLOAT32_CHW, got ",
                         pb::RawTensor::Format_IsValid(tensor.format())
                             ? pb::RawTensor::Format_Name(tensor.format())
                             : absl::StrCat(tensor.format())));
      }
      if (height < 1 || width < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("image.tensor.shape must be positive, got ", shape_text()));
      }
      if (absl::Status size = CheckImageSize(width, height, limits_); !size.ok()) return size;
      // Both sides are within the limits here, so the product cannot overflow.
      const int64_t expected = height * width * 3 * element_bytes;
      if (static_cast<int64_t>(tensor.data().size()) != expected) {
        return absl::InvalidArgumentError(absl::StrCat(
            "image.tensor.data has ", tensor.data().size(), " bytes, shape ", shape_text(), " of ",
            element_bytes == 1 ? "uint8" : "float32", " needs ", expected));
      }
      input.bytes = tensor.data();
      input.height = static_cast<int>(height);
      input.width = static_cast<int>(width);
      return input;
    }
    case pb::Image::SOURCE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("image is required: set image.encoded or image.tensor");
}

grpc::ServerUnaryReactor* VisionService::Classify(grpc::CallbackServerContext* context,
                                                  const pb::ClassifyRequest* request,
                                                  pb::ClassifyResponse* response) {
  Call call(this, context, "Classify");
  absl::StatusOr<const Attached*> attached = Ready();
  if (!attached.ok()) return call.Finish(attached.status());
  absl::StatusOr<const ModelMetadata*> model =
      ResolveModel(**attached, Task::kClassification, request->model(), call);
  if (!model.ok()) return call.Finish(model.status());

  const int num_classes = static_cast<int>((*model)->class_names.size());
  if (request->top_k() < 0 || request->top_k() > num_classes) {
    return call.Finish(
        absl::InvalidArgumentError(absl::StrCat("top_k must be in [0, ", num_classes, "] (0 means ",
                                                kDefaultTopK, "), got ", request->top_k())));
  }
  absl::StatusOr<ImageInput> image = ToImageInput(request->image(), **model);
  if (!image.ok()) return call.Finish(image.status());

  auto work = std::make_unique<InferenceRequest>();
  work->task = Task::kClassification;
  work->model = (*model)->name;
  work->image = *image;
  work->options = ClassifyOptions{request->top_k()};
  return call.Submit((*attached)->engine, std::move(work),
                     [response](const InferenceResponse& answer) -> absl::Status {
                       absl::StatusOr<const ClassifyResult*> result =
                           ResultOf<ClassifyResult>(answer, "Classify");
                       if (!result.ok()) return result.status();
                       FillMetadata(answer, response->mutable_metadata());
                       FillClassify(**result, response);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* VisionService::Detect(grpc::CallbackServerContext* context,
                                                const pb::DetectRequest* request,
                                                pb::DetectResponse* response) {
  Call call(this, context, "Detect");
  absl::StatusOr<const Attached*> attached = Ready();
  if (!attached.ok()) return call.Finish(attached.status());
  absl::StatusOr<const ModelMetadata*> model =
      ResolveModel(**attached, Task::kDetection, request->model(), call);
  if (!model.ok()) return call.Finish(model.status());

  const float threshold = request->score_threshold();
  if (!(threshold >= 0.0f && threshold < 1.0f)) {  // also refuses NaN
    return call.Finish(absl::InvalidArgumentError(
        absl::StrCat("score_threshold must be in [0, 1), got ", threshold)));
  }
  if (request->max_detections() < 0) {
    return call.Finish(absl::InvalidArgumentError(
        absl::StrCat("max_detections must be >= 0, got ", request->max_detections())));
  }
  if (!pb::MaskEncoding_IsValid(request->mask_encoding())) {
    return call.Finish(absl::InvalidArgumentError(
        absl::StrCat("mask_encoding must be MASK_ENCODING_UNSPECIFIED, MASK_ENCODING_RLE or "
                     "MASK_ENCODING_NONE, got ",
                     request->mask_encoding())));
  }
  absl::StatusOr<ImageInput> image = ToImageInput(request->image(), **model);
  if (!image.ok()) return call.Finish(image.status());

  auto work = std::make_unique<InferenceRequest>();
  work->task = Task::kDetection;
  work->model = (*model)->name;
  work->image = *image;
  work->options = DetectOptions{threshold, request->max_detections(),
                                request->mask_encoding() != pb::MASK_ENCODING_NONE};
  return call.Submit((*attached)->engine, std::move(work),
                     [response](const InferenceResponse& answer) -> absl::Status {
                       absl::StatusOr<const DetectResult*> result =
                           ResultOf<DetectResult>(answer, "Detect");
                       if (!result.ok()) return result.status();
                       FillMetadata(answer, response->mutable_metadata());
                       FillDetect(**result, response);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* VisionService::Segment(grpc::CallbackServerContext* context,
                                                 const pb::SegmentRequest* request,
                                                 pb::SegmentResponse* response) {
  Call call(this, context, "Segment");
  absl::StatusOr<const Attached*> attached = Ready();
  if (!attached.ok()) return call.Finish(attached.status());
  absl::StatusOr<const ModelMetadata*> model =
      ResolveModel(**attached, Task::kSegmentation, request->model(), call);
  if (!model.ok()) return call.Finish(model.status());

  absl::StatusOr<ImageInput> image = ToImageInput(request->image(), **model);
  if (!image.ok()) return call.Finish(image.status());

  auto work = std::make_unique<InferenceRequest>();
  work->task = Task::kSegmentation;
  work->model = (*model)->name;
  work->image = *image;
  work->options = SegmentOptions{request->counts_only()};
  return call.Submit((*attached)->engine, std::move(work),
                     [response](const InferenceResponse& answer) -> absl::Status {
                       absl::StatusOr<const SegmentResult*> result =
                           ResultOf<SegmentResult>(answer, "Segment");
                       if (!result.ok()) return result.status();
                       FillMetadata(answer, response->mutable_metadata());
                       FillSegment(**result, response);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* VisionService::ListModels(grpc::CallbackServerContext* context,
                                                    const pb::ListModelsRequest* /*request*/,
                                                    pb::ListModelsResponse* response) {
  Call call(this, context, "ListModels");
  absl::StatusOr<const Attached*> attached = Ready();
  if (!attached.ok()) return call.Finish(attached.status());
  for (const ModelMetadata& model : (*attached)->engine->ListModels()) {
    FillModelInfo(model, response->add_models());
  }
  return call.Finish(absl::OkStatus());
}

grpc::ServerUnaryReactor* VisionService::GetModel(grpc::CallbackServerContext* context,
                                                  const pb::GetModelRequest* request,
                                                  pb::ModelInfo* response) {
  Call call(this, context, "GetModel");
  absl::StatusOr<const Attached*> attached = Ready();
  if (!attached.ok()) return call.Finish(attached.status());
  if (request->name().empty()) {
    return call.Finish(absl::InvalidArgumentError("name is required (a served model name)"));
  }
  absl::StatusOr<const ModelMetadata*> served =
      (*attached)->catalog.Find(request->name(), /*field=*/"name");
  if (!served.ok()) return call.Finish(served.status());
  call.set_model((*served)->name);
  absl::StatusOr<ModelMetadata> model = (*attached)->engine->GetModel(request->name());
  if (!model.ok()) return call.Finish(model.status());
  FillModelInfo(*model, response);
  return call.Finish(absl::OkStatus());
}

}  // namespace iis
