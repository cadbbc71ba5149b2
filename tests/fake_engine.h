// A deterministic Engine for tests of the front end and of the clients (no LibTorch).
//
// Four models; every answer is computed from the input image, in its original size, so a test can
// check that the front end maps answers back correctly:
//   fake_classifier   classification, default, 3 classes "red", "green", "blue": the scores are
//                     the image's mean R, G, B divided by their sum (1/3 each for a black image);
//                     input size 64x64 (reported; FLOAT32_CHW tensors may have any size)
//   fake_classifier_b classification, not the default, same classes, version "2"
//   fake_detector     detection, up to three objects, best first: "bright" (score 0.9) the
//                     bounding box of the pixels whose grey value is > 127 with exactly those
//                     pixels as its mask (absent when no pixel is that bright), "image" (0.5) the
//                     whole image, "centre" (0.2) the box from (W/4, H/4) to (3W/4, 3H/4); the
//                     model's own threshold is 0.05 and its limit 100
//   fake_segmenter    segmentation, 4 classes "dark", "dim", "light", "bright": class = grey / 64
// Raw FLOAT32_CHW inputs are turned back into pixels with the ImageNet mean and std.
//
// It honours deadlines (a request whose deadline passes while it waits completes with
// DEADLINE_EXCEEDED, even while paused), cancellation (dropped with CANCELLED), the queue limit
// (RESOURCE_EXHAUSTED) and Drain (UNAVAILABLE afterwards). Tests control it through Pause()/
// Resume() (a gate in front of the workers) and the options.
//
// It is the front end's test double at the Engine seam: its answers are exact functions of the
// original image and its queue states are directly controllable, which the front-end tests need.
// The real runtime's queueing, deadlines and drain are tested over fake networks in
// server/runtime/runtime_engine_test.cc. Model names resolve through the real ModelCatalog.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/engine/model_catalog.h"
#include "server/metrics/metrics.h"

namespace iis {

struct FakeEngineOptions {
  // Requests accepted and not yet answered beyond this are refused with RESOURCE_EXHAUSTED.
  int max_queue_size = 16;
  // Threads that run requests.
  int worker_threads = 2;
  // Time each request spends "in inference" (a sleep).
  absl::Duration latency = absl::ZeroDuration();
  // Start with the gate closed: requests wait until Resume().
  bool start_paused = false;
  // When not OK, every request that runs completes with this status.
  absl::Status failure = absl::OkStatus();
  // When set, the stage histograms and queue depth of each model are recorded here.
  Metrics* metrics = nullptr;
};

class FakeEngine : public Engine {
 public:
  static constexpr char kClassifier[] = "fake_classifier";
  static constexpr char kClassifierB[] = "fake_classifier_b";
  static constexpr char kDetector[] = "fake_detector";
  static constexpr char kSegmenter[] = "fake_segmenter";
  static constexpr int kClassifierInputSize = 64;

  explicit FakeEngine(const FakeEngineOptions& options = {});
  // Drains with no grace period and joins the workers.
  ~FakeEngine() override;

  void Submit(std::unique_ptr<InferenceRequest> request) override;
  std::vector<ModelMetadata> ListModels() const override;
  absl::StatusOr<ModelMetadata> GetModel(std::string_view name) const override;
  absl::Status Drain(absl::Duration grace) override;

  // Closes / opens the gate in front of the workers.
  void Pause();
  void Resume();

  // Waits until `count` requests are queued (accepted, not yet running). Returns false on timeout.
  bool WaitForQueued(int count, absl::Duration timeout);

  // Returns how many requests Submit() has been given, and how many of those have been answered.
  int64_t submitted() const;
  int64_t answered() const;
  // Returns the deadline of the last request given to Submit() (InfiniteFuture before any).
  absl::Time last_deadline() const;

 private:
  void WorkerLoop();
  // Answers `request` and counts it.
  void Answer(std::unique_ptr<InferenceRequest> request, absl::StatusOr<InferenceResponse> answer);
  void Run(std::unique_ptr<InferenceRequest> request);

  const FakeEngineOptions options_;
  std::unique_ptr<const ModelCatalog> catalog_;  // immutable

  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<InferenceRequest>> queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t submitted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t answered_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::vector<std::thread> workers_;
};

}  // namespace iis
