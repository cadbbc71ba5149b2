// The per-task request options both client tools take (declared once here), and the request
// messages built from them. Tasks are the wire's internimage.serving.v1.Task; the users' names for
// the inference RPCs ("classify", "detect", "segment") come from TaskCommandName.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "internimage/serving/v1/vision.pb.h"

namespace iis::client {

// Returns "classify", "detect" or "segment" for TASK_CLASSIFICATION, TASK_DETECTION or
// TASK_SEGMENTATION (the CLI command and the loadgen --rpc value), "unspecified" otherwise.
absl::string_view TaskCommandName(::internimage::serving::v1::Task task);

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

// The request options as given on a command line (AddRequestOptions fills them); an option is
// given when its value is set (a switch: true). Values are within their ranges once parsed.
struct RequestFlags {
  std::optional<std::string> model;
  std::optional<int> top_k;
  std::optional<double> score_threshold;
  std::optional<int> max_detections;
  bool no_masks = false;
  bool counts_only = false;
  bool raw = false;
  std::optional<int> tensor_size;
};

// Declares --model, --raw, --tensor, --top-k, --score-threshold, --max-detections, --no-masks and
// --counts-only on `app` (help group "Requests"), bound to `*flags`, which must outlive the parse.
// Ranges are checked while parsing ("--top-k: expected an integer in [1, 100000], got '0'"), and so
// is an empty --model.
void AddRequestOptions(CLI::App& app, RequestFlags* flags);

// Returns the names of the given request options, without dashes, in the order of the declaration
// above ("model", "raw", "tensor", "top-k", ...).
std::vector<std::string> GivenRequestOptions(const RequestFlags& flags);

// Returns the request options of `task` (TASK_CLASSIFICATION, TASK_DETECTION or
// TASK_SEGMENTATION). Fails with INVALID_ARGUMENT naming the option when one belongs to another
// task ("--top-k applies to classify only, not to detect") or when --raw and --tensor are both
// given.
absl::StatusOr<RequestOptions> RequestOptionsFor(const RequestFlags& flags,
                                                 ::internimage::serving::v1::Task task);

// Build the request messages. `image` is copied into the message.
::internimage::serving::v1::ClassifyRequest MakeClassifyRequest(
    const RequestOptions& options, const ::internimage::serving::v1::Image& image);
::internimage::serving::v1::DetectRequest MakeDetectRequest(
    const RequestOptions& options, const ::internimage::serving::v1::Image& image);
::internimage::serving::v1::SegmentRequest MakeSegmentRequest(
    const RequestOptions& options, const ::internimage::serving::v1::Image& image);

}  // namespace iis::client
