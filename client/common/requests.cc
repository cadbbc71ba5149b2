#include "client/common/requests.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/command_line.h"

namespace iis::client {
namespace {

namespace pb = ::internimage::serving::v1;

// Every request option, in declaration order, with the task it belongs to (TASK_UNSPECIFIED: any)
// and whether it was given.
struct RequestOption {
  const char* name;
  pb::Task task;
  bool (*given)(const RequestFlags& flags);
};
constexpr RequestOption kRequestOptions[] = {
    {"model", pb::TASK_UNSPECIFIED, [](const RequestFlags& f) { return f.model.has_value(); }},
    {"raw", pb::TASK_UNSPECIFIED, [](const RequestFlags& f) { return f.raw; }},
    {"tensor", pb::TASK_UNSPECIFIED,
     [](const RequestFlags& f) { return f.tensor_size.has_value(); }},
    {"top-k", pb::TASK_CLASSIFICATION, [](const RequestFlags& f) { return f.top_k.has_value(); }},
    {"score-threshold", pb::TASK_DETECTION,
     [](const RequestFlags& f) { return f.score_threshold.has_value(); }},
    {"max-detections", pb::TASK_DETECTION,
     [](const RequestFlags& f) { return f.max_detections.has_value(); }},
    {"no-masks", pb::TASK_DETECTION, [](const RequestFlags& f) { return f.no_masks; }},
    {"counts-only", pb::TASK_SEGMENTATION, [](const RequestFlags& f) { return f.counts_only; }},
};

// Accepts a number in [0, 1): a score threshold of 1 would keep nothing.
CLI::Validator ScoreThreshold() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        if (!absl::SimpleAtod(text, &value) || !(value >= 0 && value < 1)) {
          return absl::StrCat("expected a number in [0, 1), got '", text, "'");
        }
        return "";
      },
      "in [0, 1)");
}

// Refuses an empty value (e.g. --model="$MODEL" with MODEL unset).
CLI::Validator ModelName() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        return text.empty() ? "expected a model name, got an empty string" : "";
      },
      "");
}

}  // namespace

absl::string_view TaskCommandName(pb::Task task) {
  switch (task) {
    case pb::TASK_CLASSIFICATION:
      return "classify";
    case pb::TASK_DETECTION:
      return "detect";
    case pb::TASK_SEGMENTATION:
      return "segment";
    default:
      return "unspecified";
  }
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

void AddRequestOptions(CLI::App& app, RequestFlags* flags) {
  using common::FlagNames;
  using common::IntegerIn;
  const std::string group = "Requests";
  app.add_option(FlagNames("model"), flags->model,
                 "Model to call (default: the server's default model for the task).")
      ->check(ModelName())
      ->type_name("NAME")
      ->group(group);
  app.add_flag(FlagNames("raw"), flags->raw, "Send decoded RGB pixels instead of the encoded file.")
      ->group(group);
  app.add_option(FlagNames("tensor"), flags->tensor_size,
                 "Send a ready network input instead: float32 3xNxN, the image resized and "
                 "normalised here, so the server skips decoding and preprocessing (with N the "
                 "model's input size, the loadgen measures the server against "
                 "internimage-predict --input).")
      ->check(IntegerIn(1, 4096))
      ->type_name("N")
      ->group(group);
  app.add_option(FlagNames("top-k"), flags->top_k,
                 "classify: how many classes (default: the server's, 5).")
      ->check(IntegerIn(1, 100000))
      ->type_name("N")
      ->group(group);
  app.add_option(FlagNames("score-threshold"), flags->score_threshold,
                 "detect: keep instances scoring strictly above F (default: the model's).")
      ->check(ScoreThreshold())
      ->type_name("F")
      ->group(group);
  app.add_option(FlagNames("max-detections"), flags->max_detections,
                 "detect: at most N instances (default 0: the model's limit).")
      ->check(IntegerIn(0, 10000))
      ->type_name("N")
      ->group(group);
  app.add_flag(FlagNames("no-masks"), flags->no_masks, "detect: boxes only, no instance masks.")
      ->group(group);
  app.add_flag(FlagNames("counts-only"), flags->counts_only,
               "segment: class pixel counts only, no label map.")
      ->group(group);
}

std::vector<std::string> GivenRequestOptions(const RequestFlags& flags) {
  std::vector<std::string> names;
  for (const RequestOption& option : kRequestOptions) {
    if (option.given(flags)) names.emplace_back(option.name);
  }
  return names;
}

absl::StatusOr<RequestOptions> RequestOptionsFor(const RequestFlags& flags, pb::Task task) {
  for (const RequestOption& option : kRequestOptions) {
    if (option.task != pb::TASK_UNSPECIFIED && option.task != task && option.given(flags)) {
      return absl::InvalidArgumentError(absl::StrCat("--", option.name, " applies to ",
                                                     TaskCommandName(option.task), " only, not to ",
                                                     TaskCommandName(task)));
    }
  }
  if (flags.raw && flags.tensor_size.has_value()) {
    return absl::InvalidArgumentError("--raw and --tensor exclude each other");
  }
  RequestOptions options;
  options.model = flags.model.value_or("");
  options.top_k = flags.top_k.value_or(0);
  options.score_threshold = static_cast<float>(flags.score_threshold.value_or(0.0));
  options.max_detections = flags.max_detections.value_or(0);
  options.masks = !flags.no_masks;
  options.counts_only = flags.counts_only;
  options.raw = flags.raw;
  options.tensor_size = flags.tensor_size.value_or(0);
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
