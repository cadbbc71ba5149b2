// The torch-free interface between the gRPC front end and the model runtime.
//
// The front end (server/frontend) validates a call, turns it into an InferenceRequest and hands it
// to Engine::Submit(); the runtime (server/runtime, the only server code that sees LibTorch)
// decodes, batches, runs and postprocesses it, and calls the request's `done` exactly once.
// Nothing here includes gRPC, protobuf or LibTorch, so either side can be tested with a fake of the
// other (tests/fake_engine.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "models/task.h"

namespace iis {

// The task type the whole C++ code shares (models/task.h).
using models::Task;
using models::TaskName;

// One input image. `bytes` points into memory the submitter keeps alive until `done` has been
// called (the front end points into the gRPC request message), so images are never copied.
struct ImageInput {
  enum class Kind {
    kEncoded,        // JPEG/PNG/WebP/BMP file bytes; width/height unused
    kRgb8,           // height x width x 3 uint8, RGB, row-major: preprocessed like a decoded file
    kNormalizedChw,  // 3 x height x width float32 network input, used as is (see vision.proto)
  };
  Kind kind = Kind::kEncoded;
  std::string_view bytes;
  int height = 0;
  int width = 0;
};

// How many classes a classification answer lists when the request leaves top_k at 0.
inline constexpr int kDefaultTopK = 5;

struct ClassifyOptions {
  int top_k = 0;  // 0: kDefaultTopK (at most the number of classes); else 1 .. number of classes
};
struct DetectOptions {
  float score_threshold = 0.0f;  // 0: the model's own (0.05); otherwise strictly-greater filter
  int max_detections = 0;        // 0: the model's own (100)
  bool masks = true;             // false skips mask prediction and paste-back
};
struct SegmentOptions {
  bool counts_only = false;  // true: no label PNG in the answer
};
using TaskOptions = std::variant<ClassifyOptions, DetectOptions, SegmentOptions>;

// Where a request's time went, measured by the runtime.
struct Timing {
  absl::Duration queue;        // arrival to forward start, minus preprocessing
  absl::Duration preprocess;   // decode + resize + normalise
  absl::Duration inference;    // the batch's forward pass
  absl::Duration postprocess;  // NMS, paste-back, label map, PNG
  absl::Duration total;        // arrival to answer
};

struct ClassScore {
  int class_id = 0;
  std::string label;
  float score = 0.0f;
};
struct ClassifyResult {
  std::vector<ClassScore> classes;  // best first
};

// COCO uncompressed RLE: column-major runs, alternating 0s and 1s, starting with 0s.
struct RleMask {
  int height = 0;
  int width = 0;
  std::vector<uint32_t> counts;
};
struct DetectedObject {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // original-image pixel coordinates
  int class_id = 0;
  std::string label;
  float score = 0.0f;
  RleMask mask;  // empty counts when masks were not requested
};
struct DetectResult {
  int image_width = 0;
  int image_height = 0;
  std::vector<DetectedObject> objects;  // best first
};

struct ClassPixels {
  int class_id = 0;
  std::string label;
  int64_t pixels = 0;
};
struct SegmentResult {
  int width = 0;
  int height = 0;
  std::string label_png;                  // empty when counts_only
  std::vector<ClassPixels> class_pixels;  // most pixels first
};

struct InferenceResponse {
  std::string model;
  std::string model_version;
  Timing timing;
  int batch_size = 1;
  std::variant<ClassifyResult, DetectResult, SegmentResult> result;
};

// One unit of work. Owned by the engine after Submit().
struct InferenceRequest {
  Task task = Task::kClassification;
  // A served model of `task` (front ends resolve names with ModelCatalog::Resolve; the engine
  // checks the same way and answers NOT_FOUND / INVALID_ARGUMENT otherwise). Empty: the task's
  // default model.
  std::string model;
  ImageInput image;
  TaskOptions options;
  absl::Time arrival = absl::Now();
  // The request is never run after this; it then completes with DEADLINE_EXCEEDED.
  absl::Time deadline = absl::InfiniteFuture();
  // Polled before running; a cancelled request is dropped (done gets CANCELLED). May be empty.
  std::function<bool()> is_cancelled;
  // Called exactly once, from any thread, with the answer or an error status:
  //   INVALID_ARGUMENT (bad image/tensor/options), NOT_FOUND (unknown model), RESOURCE_EXHAUSTED
  //   (queue full), DEADLINE_EXCEEDED, CANCELLED, UNAVAILABLE (draining), INTERNAL.
  std::function<void(absl::StatusOr<InferenceResponse>)> done;
};

struct BatchingSettings {
  int max_batch_size = 1;
  absl::Duration max_queue_delay;
  std::vector<int> preferred_batch_sizes;
  int max_queue_size = 0;
};

// What ListModels/GetModel report; mirrors vision.proto's ModelInfo.
struct ModelMetadata {
  std::string name;
  std::string architecture;
  std::string version;
  Task task = Task::kClassification;
  bool is_default = false;
  int input_width = 0;
  int input_height = 0;
  std::vector<std::string> class_names;
  std::vector<std::string> devices;
  std::string precision;
  BatchingSettings batching;
  bool real_weights = false;
  std::string weights_source;
};

// The model runtime as the front end sees it. Implementations are thread-safe.
class Engine {
 public:
  virtual ~Engine() = default;

  // Takes ownership of `request` and answers it through request->done exactly once, possibly
  // before Submit returns (unknown model, full queue, draining). Never blocks on inference.
  virtual void Submit(std::unique_ptr<InferenceRequest> request) = 0;

  // Returns every served model, sorted by name.
  virtual std::vector<ModelMetadata> ListModels() const = 0;

  // Returns one model's metadata, or NOT_FOUND.
  virtual absl::StatusOr<ModelMetadata> GetModel(std::string_view name) const = 0;

  // Stops taking work (Submit answers UNAVAILABLE from now on) and waits up to `grace` for
  // requests already accepted to finish; those still running after that complete with
  // UNAVAILABLE. Returns OK when everything finished in time, DEADLINE_EXCEEDED otherwise.
  virtual absl::Status Drain(absl::Duration grace) = 0;
};

}  // namespace iis
