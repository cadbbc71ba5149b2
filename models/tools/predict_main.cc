// internimage-predict: runs a model offline on .npy inputs or image files.
//
//   internimage-predict --model NAME [--weights FILE] --input X.npy --output Y.npy
//       Classification: X is a float32 NCHW array, already normalised; writes the logits
//       (N x num_classes, float32).
//   internimage-predict --model NAME [--weights FILE] --image FILE...
//       Runs the official preprocessing and prints the top-5 classes with probabilities.
// Without --weights the model gets seeded random weights (--seed, default 0) and says so.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "models/classification/classifier.h"
#include "models/npy.h"
#include "models/tools/predict_dense.h"
#include "models/preprocess/preprocess.h"
#include "models/registry.h"
#include "models/weights.h"
#include "ops/ops_registry.h"

namespace iis::models::tools {
namespace {

constexpr char kUsage[] = R"(usage:
  internimage-predict --model NAME [--weights FILE] --input X.npy --output Y.npy
  internimage-predict --model NAME [--weights FILE] --image FILE [FILE...]
  internimage-predict --model DET_OR_SEG_NAME [--weights FILE] (--image FILE... | --input X.npy)
                      --output-dir DIR [--score-threshold T]

Runs an InternImage model offline, in float32 on the CPU.

  --model NAME     architecture (official config name), one of:
%s
  --weights FILE   checkpoint: a .pth written by torch.save (official layout: the tensors under
                   'model' or 'state_dict' or at the top level, 'module.' prefixes allowed) or a
                   .safetensors file. Loaded strictly. Without it the model gets seeded random
                   weights and the answers are meaningless (a warning says so).
  --seed N         seed of the random weights (default 0)
  --input X.npy    float32 array, N x 3 x H x W, already resized and normalised
                   (classification: H = W = the model's input size)
  --output Y.npy   where --input's results go (classification: N x num_classes float32 logits)
  --image FILE...  image files (JPEG, PNG, WebP, BMP): run the official preprocessing and print
                   the top-5 classes with softmax probabilities
  --output-dir DIR detection/segmentation: write the results there (created if missing):
                   --image: <stem>.json per image for detection: {"image", "width", "height",
                   "model", "weights", "detections": [{"box": [x1, y1, x2, y2] in original
                   pixels, "score", "label" (COCO index 0..79), "name", "mask": {"size": [h, w],
                   "counts": COCO uncompressed RLE, column-major, starting with 0s}}]}, best
                   first; <stem>.png per image for segmentation: 8-bit label map at the original
                   size, pixel = ADE20K class index (0 = wall).
                   --input (N x 3 x H x W, H and W multiples of 32, taken as resized images with
                   scale factor 1): dets.npy, float32 N x 100 x 6 (x1, y1, x2, y2, score, label)
                   in input coordinates, padded with -1 rows, and mask_probs.npy, float32
                   N x 100 x 28 x 28 (each detection's mask probabilities); or logits.npy,
                   float32 N x 150 x H x W (decode-head logits resized to the input)
  --score-threshold T  detection: keep detections scoring above T (default and minimum 0.05)
  --reference      run the plain ATen reference forward instead of the optimised CPU path
  --threads N      intra-op threads (default: all cores)
  --help           this text

Exit status: 0 on success, 1 on a runtime error (unreadable file, bad array), 2 on bad usage.
)";

struct Args {
  std::string model, weights, input, output, output_dir;
  double score_threshold = 0.05;
  std::vector<std::string> images;
  uint64_t seed = 0;
  bool reference = false;
  int threads = 0;
};

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "internimage-predict: %s (see --help)\n", message.c_str());
  std::exit(2);
}

std::string ArchitectureList() {
  std::string out;
  for (const auto& a : Architectures()) out += "                     " + a.name + "\n";
  if (!out.empty()) out.pop_back();
  return out;
}

Args Parse(int argc, char** argv) {
  Args a;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) UsageError(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    if (f == "--help" || f == "-h") {
      std::printf(kUsage, ArchitectureList().c_str());
      std::exit(0);
    } else if (f == "--model") {
      a.model = value(i);
    } else if (f == "--weights") {
      a.weights = value(i);
    } else if (f == "--seed") {
      a.seed = std::strtoull(value(i).c_str(), nullptr, 10);
    } else if (f == "--input") {
      a.input = value(i);
    } else if (f == "--output") {
      a.output = value(i);
    } else if (f == "--output-dir") {
      a.output_dir = value(i);
    } else if (f == "--score-threshold") {
      a.score_threshold = std::strtod(value(i).c_str(), nullptr);
    } else if (f == "--threads") {
      a.threads = std::atoi(value(i).c_str());
    } else if (f == "--reference") {
      a.reference = true;
    } else if (f == "--image") {
      while (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0) a.images.push_back(argv[++i]);
      if (a.images.empty()) UsageError("--image needs at least one file");
    } else {
      UsageError("unknown argument '" + f + "'");
    }
  }
  if (a.model.empty()) UsageError("--model is required");
  if (a.input.empty() == a.images.empty()) UsageError("give either --input or --image");
  if (!a.input.empty() && a.output.empty() && a.output_dir.empty()) {
    UsageError("--input needs --output (classification) or --output-dir (detection, segmentation)");
  }
  return a;
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
    std::fprintf(stderr, "internimage-predict: wrote %s (%lld x %lld logits)\n", args.output.c_str(),
                 static_cast<long long>(out.shape[0]), static_cast<long long>(out.shape[1]));
    return 0;
  }
  preprocess::PreprocessSpec spec;
  spec.kind = preprocess::PreprocessKind::kClassification;
  spec.size = arch.input_size;
  for (const auto& path : args.images) {
    const NormalizedImage img = preprocess::Preprocess(preprocess::DecodeImage(ReadFileBytes(path), false), false, spec);
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
  const Args args = Parse(argc, argv);
  const Architecture* arch = FindArchitecture(args.model);
  if (arch == nullptr) UsageError("unknown model '" + args.model + "'");
  ops::CheckOpsRegistered();
  at::set_num_threads(args.threads > 0 ? args.threads
                                        : static_cast<int>(std::thread::hardware_concurrency()));
  if (arch->task == Task::kClassification) return RunClassification(args, *arch);
  if (args.output_dir.empty()) UsageError(std::string(TaskName(arch->task)) + " models need --output-dir");
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
