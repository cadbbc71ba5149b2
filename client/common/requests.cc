#include "client/common/requests.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace iis::client {
namespace {

namespace pb = ::internimage::serving::v1;

// Which task each task-specific option belongs to.
struct TaskOption {
  const char* name;
  VisionTask task;
};
constexpr TaskOption kTaskOptions[] = {
    {"top-k", VisionTask::kClassify},        {"score-threshold", VisionTask::kDetect},
    {"max-detections", VisionTask::kDetect}, {"no-masks", VisionTask::kDetect},
    {"counts-only", VisionTask::kSegment},
};

}  // namespace

absl::string_view VisionTaskName(VisionTask task) {
  switch (task) {
    case VisionTask::kClassify:
      return "classify";
    case VisionTask::kDetect:
      return "detect";
    case VisionTask::kSegment:
      return "segment";
  }
  return "unknown";
}

absl::string_view ProtoTaskName(pb::Task task) {
  switch (task) {
    case pb::TASK_CLASSIFICATION:
      return "classification";
    case pb::TASK_DETECTION:
      return "detection";
    case pb::TASK_SEGMENTATION:
      return "segmentation";
    default:
      return "unspecified";
  }
}

std::vector<FlagSpec> RequestFlagSpecs() {
  return {{"model", true},
          {"top-k", true},
          {"score-threshold", true},
          {"max-detections", true},
          {"no-masks", false},
          {"counts-only", false},
          {"raw", false},
          {"tensor", true}};
}

absl::StatusOr<RequestOptions> ParseRequestFlags(const ParsedArgs& args, VisionTask task) {
  for (const TaskOption& option : kTaskOptions) {
    if (option.task != task && args.Has(option.name)) {
      return absl::InvalidArgumentError(absl::StrCat("--", option.name, " applies to ",
                                                     VisionTaskName(option.task), " only, not to ",
                                                     VisionTaskName(task)));
    }
  }
  RequestOptions options;
  options.model = args.GetString("model", "");
  if (args.Has("model") && options.model.empty()) {
    return absl::InvalidArgumentError("--model: expected a model name, got an empty string");
  }
  auto top_k = args.GetInt("top-k", 0, 1, 100000);
  if (!top_k.ok()) return top_k.status();
  options.top_k = static_cast<int>(*top_k);
  auto threshold = args.GetDouble("score-threshold", 0.0, 0.0, 1.0);
  if (!threshold.ok() || *threshold >= 1.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--score-threshold: expected a number in [0, 1), got '",
                     args.GetString("score-threshold", ""), "'"));
  }
  options.score_threshold = static_cast<float>(*threshold);
  auto max_detections = args.GetInt("max-detections", 0, 0, 10000);
  if (!max_detections.ok()) return max_detections.status();
  options.max_detections = static_cast<int>(*max_detections);
  options.masks = !args.Has("no-masks");
  options.counts_only = args.Has("counts-only");
  options.raw = args.Has("raw");
  auto tensor = args.GetInt("tensor", 0, 1, 4096);
  if (!tensor.ok()) return tensor.status();
  options.tensor_size = static_cast<int>(*tensor);
  if (options.raw && options.tensor_size > 0) {
    return absl::InvalidArgumentError("--raw and --tensor exclude each other");
  }
  return options;
}

pb::ClassifyRequest MakeClassifyRequest(const RequestOptions& options, const pb::Image& image) {
  pb::ClassifyRequest request;
  request.set_model(options.model);
  *request.mutable_image() = image;
  request.set_top_k(options.top_k);
  return request;
}

pb::DetectRequest MakeDetectRequest(const RequestOptions& options, const pb::Image& image) {
  pb::DetectRequest request;
  request.set_model(options.model);
  *request.mutable_image() = image;
  request.set_score_threshold(options.score_threshold);
  request.set_max_detections(options.max_detections);
  request.set_mask_encoding(options.masks ? pb::MASK_ENCODING_RLE : pb::MASK_ENCODING_NONE);
  return request;
}

pb::SegmentRequest MakeSegmentRequest(const RequestOptions& options, const pb::Image& image) {
  pb::SegmentRequest request;
  request.set_model(options.model);
  *request.mutable_image() = image;
  request.set_counts_only(options.counts_only);
  return request;
}

}  // namespace iis::client
