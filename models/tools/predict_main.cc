// internimage-predict: runs a model offline on .npy inputs or image files (see --help).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "common/command_line.h"
#include "common/file_io.h"
#include "models/classification/classifier.h"
#include "models/detection/box_ops.h"
#include "models/npy.h"
#include "models/preprocess/preprocess.h"
#include "models/registry.h"
#include "models/tools/predict_dense.h"
#include "models/weights.h"
#include "ops/ops_registry.h"

namespace iis::models::tools {
namespace {

constexpr char kDescription[] = R"(Runs an InternImage model offline, in float32 on the CPU.

  internimage-predict --model NAME [--weights FILE] --image FILE...
      Runs the official preprocessing and prints, per image, the top-5 classes
      (classification), the best detections (detection) or the class shares of the label map
      (segmentation); with --output-dir, detection and segmentation write files instead.
  internimage-predict --model CLASSIFIER [--weights FILE] --input X.npy --output Y.npy
      X: float32 N x 3 x H x W, already resized and normalised, any H, W >= 1 (the official
      classifiers pool globally); Y: the N x num_classes float32 logits.
  internimage-predict --model DETECTOR_OR_SEGMENTER [--weights FILE] --input X.npy
                      --output-dir DIR
      X: float32 N x 3 x H x W, H and W multiples of 32, taken as resized images with scale
      factor 1. Writes dets.npy (N x 100 x 6: x1, y1, x2, y2, score, label in input
      coordinates, rows of -1 as padding) and mask_probs.npy (N x 100 x 28 x 28), or logits.npy
      (N x 150 x H x W, decode-head logits resized to the input).

--output-dir with --image writes per image <stem>.json for detection: {"image", "width",
"height", "model", "weights", "detections": [{"box": [x1, y1, x2, y2] in original pixels,
"score", "label" (COCO index 0..79), "name", "mask": {"size": [h, w], "counts": COCO
uncompressed RLE, column-major, starting with 0s}}]}, best first; or <stem>.png for segmentation:
an 8-bit label map at the original size, pixel = ADE20K class index (0 = wall).

Without --weights the model gets seeded random weights (--seed) and every answer is meaningless;
a warning says so.
)";

constexpr char kFooter[] =
    "\nExit status: 0 on success, 1 on a runtime error (unreadable file, bad array or weights), "
    "2 on bad usage.";

struct Args {
  std::string model, weights, input, output, output_dir;
  double score_threshold = detection::kRcnnScoreThreshold;
  std::vector<std::string> images;
  uint64_t seed = 0;
  bool reference = false;
  int threads = 0;
};

// The architecture names, as a validator of --model.
CLI::Validator KnownArchitecture() {
  std::string names;
  for (const Architecture& a : Architectures())
    absl::StrAppend(&names, names.empty() ? "" : ", ", a.name);
  return CLI::Validator(
      [names](std::string& text) -> std::string {
        if (FindArchitecture(text) != nullptr) return "";
        return absl::StrCat("expected one of ", names, "; got '", text, "'");
      },
      "ARCHITECTURE");
}

void DeclareOptions(CLI::App& app, Args& args) {
  using common::FlagNames;
  app.add_option(FlagNames("model"), args.model,
                 "Architecture (official config name), e.g. internimage_t_1k_224, "
                 "mask_rcnn_internimage_t_fpn_1x_coco, upernet_internimage_t_512_160k_ade20k.")
      ->required()
      ->check(KnownArchitecture());
  app.add_option(FlagNames("weights"), args.weights,
                 "Checkpoint: a .pth written by torch.save (official layout: the tensors under "
                 "'model' or 'state_dict' or at the top level, 'module.' prefixes allowed) or a "
                 ".safetensors file. Loaded strictly.");
  app.add_option(FlagNames("seed"), args.seed, "Seed of the random weights (default 0).")
      ->check(common::IntegerIn(0, int64_t{1} << 62));
  CLI::Option* input = app.add_option(FlagNames("input"), args.input,
                                      "float32 .npy array N x 3 x H x W (see above).");
  CLI::Option* image =
      app.add_option(FlagNames("image"), args.images, "Image files (JPEG, PNG, WebP, BMP).")
          ->expected(1, -1);
  input->excludes(image);
  app.add_option(FlagNames("output"), args.output, "Classification --input: the logits .npy.");
  app.add_option(FlagNames("output-dir"), args.output_dir,
                 "Detection/segmentation: where the result files go (created if missing).");
  app.add_option(FlagNames("score-threshold"), args.score_threshold,
                 "Detection: keep detections scoring above this (default, and minimum, the "
                 "model's own 0.05).")
      ->check(common::NumberIn(detection::kRcnnScoreThreshold, 1.0));
  app.add_flag(FlagNames("reference"), args.reference,
               "Run the plain ATen reference forward instead of the optimised CPU path.");
  app.add_option(FlagNames("threads"), args.threads, "Intra-op threads (default 0: all cores).")
      ->check(common::IntegerIn(0, 1024));
}

// Checks what the declarations cannot say. Returns the usage error, or "".
std::string UsageProblem(const Args& args, const Architecture& arch) {
  if (args.input.empty() == args.images.empty()) return "give either --input or --image";
  if (arch.task == Task::kClassification) {
    if (!args.input.empty() && args.output.empty()) return "--input needs --output";
    if (!args.output_dir.empty()) return "--output-dir is for detection and segmentation models";
    return "";
  }
  if (!args.output.empty()) {
    return std::string(TaskName(arch.task)) + " models write into --output-dir, not --output";
  }
  if (!args.input.empty() && args.output_dir.empty()) return "--input needs --output-dir";
  return "";
}

// Returns the bytes of image file `path`. Throws std::runtime_error naming it otherwise.
std::string ReadImageFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = common::ReadFile("image", path);
  if (!bytes.ok()) throw std::runtime_error(std::string(bytes.status().message()));
  return *std::move(bytes);
}

at::Tensor ArrayToTensor(const NpyArray& a, const std::string& path) {
  if (a.dtype != "<f4") throw std::runtime_error(path + ": expected float32, got " + a.dtype);
  if (a.shape.size() != 4 || a.shape[1] != 3) {
    throw std::runtime_error(path + ": expected an N x 3 x H x W array");
  }
  at::Tensor t = at::empty(a.shape, at::kFloat);
  std::memcpy(t.data_ptr<float>(), a.data.data(), a.data.size());
  return t;
}

int RunClassification(const Args& args, const Architecture& arch) {
  classification::Classifier model(arch);
  const WeightsOrigin origin = args.weights.empty() ? RandomWeights(model.network(), args.seed)
                                                    : LoadWeights(model.network(), args.weights);
  if (!origin.real) {
    std::fprintf(stderr,
                 "internimage-predict: WARNING: no --weights given: %s uses %s; its answers are "
                 "meaningless\n",
                 arch.name.c_str(), origin.description.c_str());
  }
  RunOptions options;
  options.optimized_cpu = !args.reference;
  model.Prepare(options);

  if (!args.input.empty()) {
    const at::Tensor x = ArrayToTensor(ReadNpy(args.input), args.input);
    const at::Tensor logits = model.Logits(x).contiguous();
    NpyArray out;
    out.dtype = "<f4";
    out.shape = {logits.size(0), logits.size(1)};
    out.data.resize(logits.numel() * sizeof(float));
    std::memcpy(out.data.data(), logits.data_ptr<float>(), out.data.size());
    WriteNpy(args.output, out);
    std::fprintf(stderr, "internimage-predict: wrote %s (%lld x %lld logits)\n",
                 args.output.c_str(), static_cast<long long>(out.shape[0]),
                 static_cast<long long>(out.shape[1]));
    return 0;
  }
  const preprocess::PreprocessSpec spec = preprocess::SpecFor(arch);
  for (const auto& path : args.images) {
    const NormalizedImage img =
        preprocess::Preprocess(preprocess::DecodeImage(ReadImageFile(path), false), false, spec);
    const at::Tensor x = at::from_blob(const_cast<float*>(img.chw.data()),
                                       {1, 3, img.height, img.width}, at::kFloat);
    const at::Tensor probs = at::softmax(model.Logits(x), 1)[0];
    const auto [scores, indices] = probs.topk(5);
    std::printf("%s\n", path.c_str());
    for (int k = 0; k < 5; ++k) {
      const int64_t c = indices[k].item<int64_t>();
      std::printf("  %d. %-40s %.4f  (class %lld)\n", k + 1, (*arch.class_names)[c].c_str(),
                  scores[k].item<float>(), static_cast<long long>(c));
    }
  }
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app(kDescription, "internimage-predict");
  common::SetUpCommandLine(app, kFooter);
  Args args;
  DeclareOptions(app, args);
  absl::StatusOr<common::CommandLineResult> parsed =
      common::ParseCommandLine(app, common::ArgsOf(argc, argv));
  if (parsed.ok() && *parsed == common::CommandLineResult::kHelp) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  const Architecture* arch = parsed.ok() ? FindArchitecture(args.model) : nullptr;
  const std::string problem =
      !parsed.ok() ? std::string(parsed.status().message()) : UsageProblem(args, *arch);
  if (!problem.empty()) {
    std::fprintf(stderr, "internimage-predict: %s (see --help)\n", problem.c_str());
    return 2;
  }
  ops::CheckOpsRegistered();
  at::set_num_threads(args.threads > 0 ? args.threads
                                       : static_cast<int>(std::thread::hardware_concurrency()));
  if (arch->task == Task::kClassification) return RunClassification(args, *arch);
  DensePredictRequest request;
  request.weights = args.weights;
  request.seed = args.seed;
  request.reference = args.reference;
  request.images = args.images;
  request.input = args.input;
  request.output_dir = args.output_dir;
  request.score_threshold = args.score_threshold;
  return RunDensePrediction(*arch, request);
}

}  // namespace
}  // namespace iis::models::tools

int main(int argc, char** argv) {
  try {
    return iis::models::tools::Main(argc, argv);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "internimage-predict: error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internimage-predict: error: %s\n", e.what());
    return 1;
  }
}
