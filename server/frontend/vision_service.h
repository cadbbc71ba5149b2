// The gRPC VisionService (proto/internimage/serving/v1/vision.proto) over an Engine.
//
// Thin asynchronous handlers on gRPC's callback API: each one validates the request (model name,
// image or raw tensor, task options, image header and size limits), reads the deadline, builds an
// InferenceRequest whose image is a view into the request message, submits it and returns the
// reactor at once. The engine's `done` callback converts the answer and calls Finish().
//
// Errors (canonical codes, converted once by ToGrpcStatus):
//   INVALID_ARGUMENT   bad model name, missing/corrupt/oversized image, inconsistent raw tensor,
//                      option out of range, unknown enum value, a model of another task
//   NOT_FOUND          unknown model, or no model serves the task
//   UNAVAILABLE        no engine attached yet ("models are still loading") or draining
//                      ("server is shutting down")
//   anything the engine answers (RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, CANCELLED, INTERNAL ...)
//
// Metrics: every answer is counted in iis_requests_total{model,method,code} and timed in
// iis_request_duration_seconds; submitted calls are counted in iis_inflight_requests. The model
// label is the resolved served model name, or "" when the name is unknown or invalid, so clients
// cannot create label values.
//
// Thread-safe: handlers run concurrently on gRPC's threads; AttachEngine and StartDrain may be
// called from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "internimage/serving/v1/vision.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/engine/model_catalog.h"
#include "server/frontend/image_header.h"
#include "server/metrics/metrics.h"

namespace iis {

class VisionService final : public internimage::serving::v1::VisionService::CallbackService {
 public:
  // `metrics` is not owned and must outlive the service.
  VisionService(const ImageLimits& limits, Metrics* metrics);
  ~VisionService() override;

  VisionService(const VisionService&) = delete;
  VisionService& operator=(const VisionService&) = delete;

  // Starts serving calls with `engine` (not owned; it must outlive every call) and reads its
  // model list once (models do not change while serving). Errors: FAILED_PRECONDITION when an
  // engine is already attached.
  absl::Status AttachEngine(Engine* engine);

  // Makes every later call answer UNAVAILABLE "server is shutting down". Calls already submitted
  // are not affected.
  void StartDrain();

  // Waits until every call this service has started is done (its answer sent, or the call
  // cancelled) or `deadline` passes. Returns true when none is left.
  bool WaitForCalls(absl::Time deadline);

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const internimage::serving::v1::ClassifyRequest* request,
                                     internimage::serving::v1::ClassifyResponse* response) override;
  grpc::ServerUnaryReactor* Detect(grpc::CallbackServerContext* context,
                                   const internimage::serving::v1::DetectRequest* request,
                                   internimage::serving::v1::DetectResponse* response) override;
  grpc::ServerUnaryReactor* Segment(grpc::CallbackServerContext* context,
                                    const internimage::serving::v1::SegmentRequest* request,
                                    internimage::serving::v1::SegmentResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const internimage::serving::v1::ListModelsRequest* request,
      internimage::serving::v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* context,
                                     const internimage::serving::v1::GetModelRequest* request,
                                     internimage::serving::v1::ModelInfo* response) override;

 private:
  // The attached engine and its models; immutable once published.
  struct Attached {
    Engine* engine = nullptr;
    ModelCatalog catalog;
  };
  class Call;
  class Reactor;

  // Returns the attached state, or UNAVAILABLE while starting or draining.
  absl::StatusOr<const Attached*> Ready() const;
  // Returns the served model `name` selects for `task` (empty: the task's default) and makes it
  // the call's metrics label as soon as it is known to be served (also when its task is wrong).
  absl::StatusOr<const ModelMetadata*> ResolveModel(const Attached& attached, Task task,
                                                    const std::string& name, Call& call) const;
  // Checks `image` against the model and the limits and returns the engine's view of it.
  absl::StatusOr<ImageInput> ToImageInput(const internimage::serving::v1::Image& image,
                                          const ModelMetadata& model) const;

  const ImageLimits limits_;
  Metrics* const metrics_;
  std::atomic<bool> draining_{false};
  absl::Mutex calls_mu_;
  int64_t active_calls_ ABSL_GUARDED_BY(calls_mu_) = 0;
  std::atomic<const Attached*> attached_{nullptr};
  std::unique_ptr<const Attached> attached_owner_;  // written once, before attached_ is set
};

}  // namespace iis
