// The per-task request options both client tools take, and the request messages built from them.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/common/args.h"
#include "internimage/serving/v1/vision.pb.h"

namespace iis::client {

// The three inference RPCs.
enum class VisionTask { kClassify, kDetect, kSegment };

// Returns "classify", "detect" or "segment" (the CLI subcommand and the loadgen --rpc value).
absl::string_view VisionTaskName(VisionTask task);

// Returns "classification", "detection", "segmentation" or "unspecified" for a model's task.
absl::string_view ProtoTaskName(::internimage::serving::v1::Task task);

// What a request asks for besides its image; 0 / false / empty mean the server's defaults.
struct RequestOptions {
  std::string model;          // --model: empty selects the task's default model
  int top_k = 0;              // --top-k (classify): 1..100000
  float score_threshold = 0;  // --score-threshold (detect): [0, 1)
  int max_detections = 0;     // --max-detections (detect): 0..10000
  bool masks = true;          // --no-masks (detect) clears it
  bool counts_only = false;   // --counts-only (segment)
  bool raw = false;           // --raw: send decoded RGB pixels instead of the file bytes
  // --tensor N: send ready network inputs, float32 3 x N x N (the image resized to N x N and
  // normalised with the ImageNet mean/std), which the server runs without preprocessing. 0: off.
  int tensor_size = 0;
};

// Returns the specs of --model, --top-k, --score-threshold, --max-detections, --no-masks,
// --counts-only, --raw and --tensor.
std::vector<FlagSpec> RequestFlagSpecs();

// Reads the request options of `task` from `args`. Fails with INVALID_ARGUMENT naming the option
// when a value is out of range or an option belongs to another task (e.g. --top-k with detect).
absl::StatusOr<RequestOptions> ParseRequestFlags(const ParsedArgs& args, VisionTask task);

// Build the request messages. `image` is copied into the message.
::internimage::serving::v1::ClassifyRequest MakeClassifyRequest(
    const RequestOptions& options, const ::internimage::serving::v1::Image& image);
::internimage::serving::v1::DetectRequest MakeDetectRequest(
    const RequestOptions& options, const ::internimage::serving::v1::Image& image);
::internimage::serving::v1::SegmentRequest MakeSegmentRequest(
    const RequestOptions& options, const ::internimage::serving::v1::Image& image);

}  // namespace iis::client
