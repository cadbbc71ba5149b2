#include "models/tools/predict_dense.h"

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include "common/file_io.h"
#include "models/dense_batch.h"
#include "models/detection/mask_paste.h"
#include "models/detection/mask_rcnn.h"
#include "models/npy.h"
#include "models/preprocess/preprocess.h"
#include "models/segmentation/upernet.h"
#include "models/weights.h"
#include "nlohmann/json.hpp"

namespace iis::models::tools {
namespace {

namespace fs = std::filesystem;

void WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error(path.string() + ": cannot write");
}

void WarnIfRandom(const Architecture& arch, const WeightsOrigin& origin) {
  if (origin.real) return;
  std::fprintf(stderr,
               "internimage-predict: WARNING: no --weights given: %s uses %s; its answers are "
               "meaningless\n",
               arch.name.c_str(), origin.description.c_str());
}

RunOptions CpuOptions(const DensePredictRequest& request) {
  RunOptions options;
  options.optimized_cpu = !request.reference;
  return options;
}

// Output stems of the image files, checked to be distinct.
std::vector<std::string> Stems(const std::vector<std::string>& images) {
  std::vector<std::string> stems;
  std::set<std::string> seen;
  for (const auto& path : images) {
    const std::string stem = fs::path(path).stem().string();
    if (!seen.insert(stem).second) {
      throw std::invalid_argument("--image: two files are named '" + stem +
                                  "': their results would overwrite each other");
    }
    stems.push_back(stem);
  }
  return stems;
}

// Reads the --input array: float32 N x 3 x H x W with H and W multiples of 32.
at::Tensor ReadInputBatch(const std::string& path) {
  const NpyArray a = ReadNpy(path);
  if (a.dtype != "<f4") throw std::runtime_error(path + ": expected float32, got " + a.dtype);
  if (a.shape.size() != 4 || a.shape[0] < 1 || a.shape[1] != 3 || a.shape[2] < 32 ||
      a.shape[3] < 32 || a.shape[2] % 32 != 0 || a.shape[3] % 32 != 0) {
    std::string shape;
    for (int64_t d : a.shape) shape += (shape.empty() ? "" : " x ") + std::to_string(d);
    throw std::runtime_error(path + ": expected an N x 3 x H x W array with H and W positive " +
                             "multiples of 32, got " + (shape.empty() ? "a scalar" : shape));
  }
  at::Tensor t = at::empty(a.shape, at::kFloat);
  std::memcpy(t.data_ptr<float>(), a.data.data(), a.data.size());
  return t;
}

void WriteArray(const fs::path& path, const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  NpyArray out;
  out.dtype = "<f4";
  out.shape = c.sizes().vec();
  out.data.resize(c.numel() * sizeof(float));
  std::memcpy(out.data.data(), c.data_ptr<float>(), out.data.size());
  WriteNpy(path.string(), out);
}

// Preprocesses one image file as the architecture's official pipeline does.
std::pair<at::Tensor, DenseImageMeta> LoadImage(const std::string& path, const Architecture& arch) {
  const preprocess::PreprocessSpec spec = preprocess::SpecFor(arch);
  NormalizedImage img;
  try {
    absl::StatusOr<std::string> bytes = common::ReadFile("image", path);
    if (!bytes.ok()) throw std::runtime_error(std::string(bytes.status().message()));
    img = preprocess::Preprocess(preprocess::DecodeImage(*bytes, /*apply_exif_orientation=*/true),
                                 false, spec);
  } catch (const preprocess::PreprocessError& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  return {CollateImages({ImageTensor(img)}, arch.size_divisor), MetaOf(img)};
}

// The <stem>.json document of one image (see predict_dense.h).
std::string DetectionJson(const std::string& image, const DenseImageMeta& meta,
                          const Architecture& arch, const WeightsOrigin& origin,
                          const detection::ImageDetections& d) {
  using Json = nlohmann::ordered_json;
  const int h = static_cast<int>(meta.original_height), w = static_cast<int>(meta.original_width);
  Json detections = Json::array();
  for (int64_t i = 0; i < d.scores.size(0); ++i) {
    const auto b = d.boxes[i].contiguous();
    const std::array<float, 4> box = {b[0].item<float>(), b[1].item<float>(), b[2].item<float>(),
                                      b[3].item<float>()};
    const int64_t label = d.labels[i].item<int64_t>();
    const at::Tensor probs = d.mask_probs[i].contiguous();
    const detection::MaskWindow mask = detection::PasteMask(
        probs.data_ptr<float>(), detection::kMaskSize,
        detection::MmdetPasteBox(box, meta.scale_x, meta.scale_y), h, w, detection::kMaskThreshold);
    detections.push_back(
        {{"box", box},
         {"score", d.scores[i].item<float>()},
         {"label", label},
         {"name", (*arch.class_names)[label]},
         {"mask", {{"size", {h, w}}, {"counts", detection::EncodeRle(mask, h, w)}}}});
  }
  const Json document = {{"image", image},
                         {"width", w},
                         {"height", h},
                         {"model", arch.name},
                         {"weights", origin.description},
                         {"detections", std::move(detections)}};
  return document.dump(1) + "\n";
}

// Prints the best detections of one image: class, score and box in original pixels.
void PrintDetections(const std::string& image, const Architecture& arch,
                     const detection::ImageDetections& d) {
  constexpr int64_t kShown = 10;
  const int64_t n = d.scores.size(0);
  std::printf("%s: %lld detections%s\n", image.c_str(), static_cast<long long>(n),
              n > kShown ? ", the best 10:" : "");
  for (int64_t i = 0; i < std::min(n, kShown); ++i) {
    const auto b = d.boxes[i].contiguous();
    const int64_t label = d.labels[i].item<int64_t>();
    std::printf("  %2lld. %-16s %.3f  box (%.1f, %.1f)-(%.1f, %.1f)\n",
                static_cast<long long>(i + 1), (*arch.class_names)[label].c_str(),
                d.scores[i].item<float>(), b[0].item<float>(), b[1].item<float>(),
                b[2].item<float>(), b[3].item<float>());
  }
}

// Prints the classes of a label map with their share of the pixels, most first.
void PrintClassShares(const std::string& image, const Architecture& arch,
                      const at::Tensor& labels) {
  constexpr size_t kShown = 10;
  const at::Tensor counts = at::bincount(labels.flatten().to(at::kLong), {}, arch.num_classes);
  std::vector<std::pair<int64_t, int64_t>> present;  // (pixels, class)
  for (int64_t c = 0; c < counts.size(0); ++c) {
    if (const int64_t pixels = counts[c].item<int64_t>(); pixels > 0)
      present.emplace_back(pixels, c);
  }
  std::stable_sort(present.begin(), present.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  const double total = static_cast<double>(labels.numel());
  std::printf("%s: %lld x %lld label map, %zu classes%s\n", image.c_str(),
              static_cast<long long>(labels.size(1)), static_cast<long long>(labels.size(0)),
              present.size(), present.size() > kShown ? ", the largest 10:" : "");
  for (size_t i = 0; i < std::min(present.size(), kShown); ++i) {
    std::printf("  %5.1f%%  %s (class %lld)\n", 100.0 * present[i].first / total,
                (*arch.class_names)[present[i].second].c_str(),
                static_cast<long long>(present[i].second));
  }
}

int RunDetection(const Architecture& arch, const DensePredictRequest& request,
                 const fs::path& dir) {
  detection::MaskRcnn model(arch);
  const WeightsOrigin origin = request.weights.empty()
                                   ? RandomWeights(model.network(), request.seed)
                                   : LoadWeights(model.network(), request.weights);
  WarnIfRandom(arch, origin);
  model.Prepare(CpuOptions(request));
  detection::DetectionOptions options;
  options.score_threshold = request.score_threshold;
  if (!request.input.empty()) {
    const at::Tensor batch = ReadInputBatch(request.input);
    const int64_t n = batch.size(0), rows = detection::kRcnnMaxPerImage;
    const std::vector<DenseImageMeta> metas(n, IdentityMeta(batch.size(2), batch.size(3)));
    const auto results = model.Detect(batch, metas, options);
    at::Tensor dets = at::full({n, rows, 6}, -1.0f);
    at::Tensor masks = at::zeros({n, rows, detection::kMaskSize, detection::kMaskSize});
    for (int64_t i = 0; i < n; ++i) {
      const auto& r = results[i];
      const int64_t k = r.scores.size(0);
      dets[i].slice(0, 0, k).copy_(
          at::cat({r.boxes, r.scores.unsqueeze(1), r.labels.to(at::kFloat).unsqueeze(1)}, 1));
      masks[i].slice(0, 0, k).copy_(r.mask_probs);
    }
    WriteArray(dir / "dets.npy", dets);
    WriteArray(dir / "mask_probs.npy", masks);
    std::printf("%s: wrote %s (%lld x %lld x 6) and mask_probs.npy\n", request.input.c_str(),
                (dir / "dets.npy").string().c_str(), static_cast<long long>(n),
                static_cast<long long>(rows));
    return 0;
  }
  const std::vector<std::string> stems = Stems(request.images);
  for (size_t i = 0; i < request.images.size(); ++i) {
    const auto [batch, meta] = LoadImage(request.images[i], arch);
    const auto results = model.Detect(batch, {meta}, options);
    if (dir.empty()) {
      PrintDetections(request.images[i], arch, results[0]);
      continue;
    }
    const fs::path out = dir / (stems[i] + ".json");
    WriteText(out, DetectionJson(request.images[i], meta, arch, origin, results[0]));
    std::printf("%s: %lld detections -> %s\n", request.images[i].c_str(),
                static_cast<long long>(results[0].scores.size(0)), out.string().c_str());
  }
  return 0;
}

int RunSegmentation(const Architecture& arch, const DensePredictRequest& request,
                    const fs::path& dir) {
  segmentation::UperNet model(arch);
  const WeightsOrigin origin =
      request.weights.empty()
          ? RandomWeights(model.network(), request.seed)
          : LoadWeights(model.network(), request.weights, segmentation::UperNet::CheckpointRules());
  WarnIfRandom(arch, origin);
  model.Prepare(CpuOptions(request));
  if (!request.input.empty()) {
    const at::Tensor batch = ReadInputBatch(request.input);
    const int64_t n = batch.size(0), h = batch.size(2), w = batch.size(3);
    const std::vector<DenseImageMeta> metas(n, IdentityMeta(h, w));
    segmentation::SegmentationOptions options;
    options.return_logits = true;
    const auto results = model.Segment(batch, metas, options);
    std::vector<at::Tensor> logits;
    for (const auto& r : results) logits.push_back(r.logits);
    WriteArray(dir / "logits.npy", at::stack(logits));
    std::printf("%s: wrote %s (%lld x %d x %lld x %lld)\n", request.input.c_str(),
                (dir / "logits.npy").string().c_str(), static_cast<long long>(n), arch.num_classes,
                static_cast<long long>(h), static_cast<long long>(w));
    return 0;
  }
  const std::vector<std::string> stems = Stems(request.images);
  for (size_t i = 0; i < request.images.size(); ++i) {
    const auto [batch, meta] = LoadImage(request.images[i], arch);
    const at::Tensor labels = model.Segment(batch, {meta})[0].label_map.contiguous();
    if (dir.empty()) {
      PrintClassShares(request.images[i], arch, labels);
      continue;
    }
    const cv::Mat png(static_cast<int>(labels.size(0)), static_cast<int>(labels.size(1)), CV_8UC1,
                      labels.data_ptr<uint8_t>());
    const fs::path out = dir / (stems[i] + ".png");
    if (!cv::imwrite(out.string(), png)) throw std::runtime_error(out.string() + ": cannot write");
    std::printf("%s: %lld x %lld label map -> %s\n", request.images[i].c_str(),
                static_cast<long long>(labels.size(1)), static_cast<long long>(labels.size(0)),
                out.string().c_str());
  }
  return 0;
}

}  // namespace

int RunDensePrediction(const Architecture& arch, const DensePredictRequest& request) {
  if (arch.task == Task::kClassification) {
    throw std::invalid_argument(arch.name + " is a classification model");
  }
  if (request.input.empty() == request.images.empty()) {
    throw std::invalid_argument("give either --input or --image");
  }
  if (!request.input.empty() && request.output_dir.empty()) {
    throw std::invalid_argument("--input needs --output-dir");
  }
  fs::path dir;
  if (!request.output_dir.empty()) {
    dir = request.output_dir;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!fs::is_directory(dir)) {
      throw std::runtime_error(request.output_dir + ": cannot create the output folder" +
                               (ec ? " (" + ec.message() + ")" : ""));
    }
  }
  return arch.task == Task::kDetection ? RunDetection(arch, request, dir)
                                       : RunSegmentation(arch, request, dir);
}

}  // namespace iis::models::tools
