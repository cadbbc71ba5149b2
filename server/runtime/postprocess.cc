#include "server/runtime/postprocess.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "models/detection/mask_paste.h"

namespace iis::runtime {

ClassifyResult TopClasses(const ClassificationOutput& output, int top_k,
                          const std::vector<std::string>& class_names) {
  const auto& p = output.probabilities;
  const int k = std::clamp<int>(top_k > 0 ? top_k : kDefaultTopK, 0, static_cast<int>(p.size()));
  std::vector<int> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  ClassifyResult result;
  for (int i = 0; i < k; ++i) {
    ClassScore s;
    s.class_id = order[i];
    s.label = order[i] < static_cast<int>(class_names.size()) ? class_names[order[i]] : "";
    s.score = p[order[i]];
    result.classes.push_back(std::move(s));
  }
  return result;
}

SegmentResult ToSegmentResult(const SegmentationOutput& output, bool counts_only,
                              const std::vector<std::string>& class_names) {
  SegmentResult result;
  result.width = output.width;
  result.height = output.height;
  std::vector<int64_t> counts(256, 0);
  for (uint8_t v : output.labels) ++counts[v];
  for (int c = 0; c < 256; ++c) {
    if (counts[c] == 0) continue;
    ClassPixels cp;
    cp.class_id = c;
    cp.label = c < static_cast<int>(class_names.size()) ? class_names[c] : "";
    cp.pixels = counts[c];
    result.class_pixels.push_back(std::move(cp));
  }
  std::stable_sort(result.class_pixels.begin(), result.class_pixels.end(),
                   [](const ClassPixels& a, const ClassPixels& b) { return a.pixels > b.pixels; });
  if (!counts_only) {
    const cv::Mat map(output.height, output.width, CV_8UC1,
                      const_cast<uint8_t*>(output.labels.data()));
    std::vector<uchar> png;
    if (!cv::imencode(".png", map, png))
      throw std::runtime_error("PNG encoding of the label map failed");
    result.label_png.assign(png.begin(), png.end());
  }
  return result;
}

DetectResult ToDetectResult(const DetectionOutput& output, const DetectOptions& options,
                            const std::vector<std::string>& class_names) {
  DetectResult result;
  result.image_width = output.image_width;
  result.image_height = output.image_height;
  for (const auto& o : output.objects) {
    if (options.score_threshold > 0 && !(o.score > options.score_threshold)) continue;
    if (options.max_detections > 0 &&
        static_cast<int>(result.objects.size()) >= options.max_detections) {
      break;
    }
    DetectedObject d;
    d.x1 = o.x1, d.y1 = o.y1, d.x2 = o.x2, d.y2 = o.y2;
    d.class_id = o.label;
    d.label = o.label < static_cast<int>(class_names.size()) ? class_names[o.label] : "";
    d.score = o.score;
    if (options.masks && !o.mask_probs.empty()) {
      // mmdet pastes with the detection box scaled back to the network input and down again.
      const auto box = models::detection::MmdetPasteBox({o.x1, o.y1, o.x2, o.y2}, output.scale_x,
                                                        output.scale_y);
      const auto window = models::detection::PasteMask(o.mask_probs.data(), output.mask_size, box,
                                                       output.image_height, output.image_width);
      d.mask.height = output.image_height;
      d.mask.width = output.image_width;
      for (uint64_t run :
           models::detection::EncodeRle(window, output.image_height, output.image_width)) {
        d.mask.counts.push_back(static_cast<uint32_t>(run));
      }
    }
    result.objects.push_back(std::move(d));
  }
  return result;
}

}  // namespace iis::runtime
