// One served model inside the runtime: admission, preprocessing on the worker pool, the dynamic
// batch queue, forward passes on its execution instances, postprocessing, timing and metrics.
//
// Request path (docs/architecture.md): Submit reserves a queue slot (RESOURCE_EXHAUSTED at once
// when full) -> the worker pool decodes and preprocesses (INVALID_ARGUMENT for bad images) ->
// BatchQueue (deadline: DEADLINE_EXCEEDED, cancelled: CANCELLED) -> an instance thread runs the
// batch (a batch that fails is retried image by image so one bad request never fails the others)
// -> the pool postprocesses each answer and calls its `done`.
// Torch-free. Thread-safe: Submit may be called from any thread.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/thread_pool.h"
#include "internimage/serving/v1/server_config.pb.h"
#include "server/batching/batch_queue.h"
#include "server/engine/engine.h"
#include "server/metrics/metrics.h"
#include "server/runtime/network.h"

namespace iis::runtime {

class ModelRunner {
 public:
  // Takes `model` and starts one batch thread per instance, batching as `config` says
  // (BatchQueueOptionsFor). `pool` and `metrics` must outlive the runner. Errors:
  // INVALID_ARGUMENT for batching options the queue rejects.
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Create(
      LoadedModel model, const internimage::serving::v1::ModelConfig& config,
      common::ThreadPool* pool, Metrics* metrics);
  ~ModelRunner();

  const ModelMetadata& metadata() const { return model_.metadata; }

  // Runs `iterations` forward passes per instance on synthetic inputs of the model's nominal size
  // (batch 1, and the maximum batch size for classification) before traffic arrives.
  absl::Status Warmup(int iterations);

  // Answers `request` (its task was checked by the engine) through request->done, exactly once.
  void Submit(std::unique_ptr<InferenceRequest> request);

  // Stops admitting, runs what is queued until `deadline`, drops the rest with UNAVAILABLE.
  absl::Status Drain(absl::Time deadline);

 private:
  struct Job;
  ModelRunner(LoadedModel model, common::ThreadPool* pool, Metrics* metrics);
  void Preprocess(BatchReservation reservation, std::unique_ptr<Job> task);
  void ProcessBatch(int instance, std::vector<std::unique_ptr<Job>> batch);
  void Drop(std::unique_ptr<Job> task, absl::Status status);
  // Postprocesses one output on the pool and answers the request.
  void Complete(std::unique_ptr<Job> task, NetworkOutput output, absl::Time forward_start,
                absl::Time forward_end, int batch_size);
  std::vector<NetworkOutput> RunGuarded(int instance, const std::vector<Job*>& tasks,
                                        std::vector<absl::Status>* errors);

  LoadedModel model_;
  common::ThreadPool* const pool_;
  ModelMetrics* const metrics_;
  std::unique_ptr<BatchQueue<Job>> queue_;
};

}  // namespace iis::runtime
