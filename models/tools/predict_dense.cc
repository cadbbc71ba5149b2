#include "models/tools/predict_dense.h"

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>

#include "models/dense_batch.h"
#include "models/detection/mask_paste.h"
#include "models/detection/mask_rcnn.h"
#include "models/npy.h"
#include "models/preprocess/preprocess.h"
#include "models/segmentation/upernet.h"
#include "models/weights.h"

namespace iis::models::tools {
namespace {

namespace fs = std::filesystem;

void WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error(path.string() + ": cannot write");
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Shortest text that reads back as the same float32.
std::string JsonFloat(float v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(v));
  return buf;
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
  preprocess::PreprocessSpec spec;
  spec.kind = arch.task == Task::kDetection ? preprocess::PreprocessKind::kDetection
                                                 : preprocess::PreprocessKind::kSegmentation;
  spec.scale_long = arch.scale_long;
  spec.scale_short = arch.scale_short;
  spec.size_divisor = arch.size_divisor;
  NormalizedImage img;
  try {
    img = preprocess::Preprocess(preprocess::DecodeImage(ReadFileBytes(path), /*apply_exif_orientation=*/true), false, spec);
  } catch (const preprocess::PreprocessError& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  return {CollateImages({ImageTensor(img)}, arch.size_divisor), MetaOf(img)};
}

std::string DetectionJson(const std::string& image, const DenseImageMeta& meta,
                          const Architecture& arch, const WeightsOrigin& origin,
                          const detection::ImageDetections& d) {
  std::ostringstream js;
  const int h = static_cast<int>(meta.original_height), w = static_cast<int>(meta.original_width);
  js << "{\"image\": " << JsonString(image) << ", \"width\": " << w << ", \"height\": " << h
     << ", \"model\": " << JsonString(arch.name) << ", \"weights\": "
     << JsonString(origin.description) << ", \"detections\": [";
  for (int64_t i = 0; i < d.scores.size(0); ++i) {
    const auto b = d.boxes[i].contiguous();
    const std::array<float, 4> box = {b[0].item<float>(), b[1].item<float>(), b[2].item<float>(),
                                      b[3].item<float>()};
    const int64_t label = d.labels[i].item<int64_t>();
    const at::Tensor probs = d.mask_probs[i].contiguous();
    const detection::MaskWindow mask =
        detection::PasteMask(probs.data_ptr<float>(), detection::kMaskSize,
                             detection::MmdetPasteBox(box, meta.scale_x, meta.scale_y), h, w,
                             detection::kMaskThreshold);
    js << (i ? ", " : "") << "\n  {\"box\": [" << JsonFloat(box[0]) << ", " << JsonFloat(box[1])
       << ", " << JsonFloat(box[2]) << ", " << JsonFloat(box[3])
       << "], \"score\": " << JsonFloat(d.scores[i].item<float>()) << ", \"label\": " << label
       << ", \"name\": " << JsonString((*arch.class_names)[label])
       << ", \"mask\": {\"size\": [" << h << ", " << w << "], \"counts\": [";
    const std::vector<uint64_t> counts = detection::EncodeRle(mask, h, w);
    for (size_t j = 0; j < counts.size(); ++j) js << (j ? ", " : "") << counts[j];
    js << "]}}";
  }
  js << "\n]}\n";
  return js.str();
}

int RunDetection(const Architecture& arch, const DensePredictRequest& request, const fs::path& dir) {
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
  if (request.output_dir.empty()) throw std::invalid_argument("--output-dir is required");
  if (request.input.empty() == request.images.empty()) {
    throw std::invalid_argument("give either --input or --image");
  }
  if (!(request.score_threshold >= detection::kRcnnScoreThreshold && request.score_threshold <= 1)) {
    throw std::invalid_argument("--score-threshold must be in [0.05, 1] (0.05 is the model's own), got " +
                                std::to_string(request.score_threshold));
  }
  const fs::path dir(request.output_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) {
    throw std::runtime_error(request.output_dir + ": cannot create the output folder" +
                             (ec ? " (" + ec.message() + ")" : ""));
  }
  return arch.task == Task::kDetection ? RunDetection(arch, request, dir)
                                            : RunSegmentation(arch, request, dir);
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace iis::models::tools
