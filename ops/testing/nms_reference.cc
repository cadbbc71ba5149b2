#include "ops/testing/nms_reference.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace iis::ops::reference {
namespace {

float Area(const Box& b) { return (b[2] - b[0]) * (b[3] - b[1]); }

// Returns `indices` ordered by decreasing score, NaN first, ties by increasing index.
std::vector<int64_t> ByScore(std::vector<int64_t> indices, const std::vector<float>& scores) {
  std::sort(indices.begin(), indices.end(), [&scores](int64_t a, int64_t b) {
    const bool a_nan = std::isnan(scores[a]);
    const bool b_nan = std::isnan(scores[b]);
    if (a_nan != b_nan) return a_nan;
    if (!a_nan && scores[a] != scores[b]) return scores[a] > scores[b];
    return a < b;
  });
  return indices;
}

// NmsReference restricted to `members` (indices into boxes/scores).
std::vector<int64_t> NmsOver(const std::vector<int64_t>& members, const std::vector<Box>& boxes,
                             const std::vector<float>& scores, float iou_threshold) {
  const std::vector<int64_t> order = ByScore(members, scores);
  std::vector<bool> suppressed(boxes.size(), false);
  std::vector<int64_t> keep;
  for (size_t a = 0; a < order.size(); ++a) {
    const int64_t i = order[a];
    if (suppressed[i]) continue;
    keep.push_back(i);
    for (size_t b = a + 1; b < order.size(); ++b) {
      const int64_t j = order[b];
      if (!suppressed[j] && Iou(boxes[i], boxes[j]) > iou_threshold) suppressed[j] = true;
    }
  }
  return keep;
}

std::vector<int64_t> AllIndices(size_t n) {
  std::vector<int64_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = static_cast<int64_t>(i);
  return all;
}

// Runs NmsOver on each distinct idx's members of `boxes` and merges the survivors by score.
std::vector<int64_t> PerIdx(const std::vector<Box>& boxes, const std::vector<float>& scores,
                            const std::vector<int64_t>& idxs, float iou_threshold) {
  std::vector<int64_t> survivors;
  for (int64_t id : std::set<int64_t>(idxs.begin(), idxs.end())) {
    std::vector<int64_t> members;
    for (size_t i = 0; i < idxs.size(); ++i) {
      if (idxs[i] == id) members.push_back(static_cast<int64_t>(i));
    }
    for (int64_t i : NmsOver(members, boxes, scores, iou_threshold)) survivors.push_back(i);
  }
  return ByScore(survivors, scores);
}

}  // namespace

float Iou(const Box& a, const Box& b) {
  const float w = std::max(0.0f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
  const float h = std::max(0.0f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
  const float inter = w * h;
  const float union_area = Area(a) + Area(b) - inter;
  if (union_area == 0.0f) return 0.0f;
  return inter / union_area;
}

std::vector<int64_t> NmsReference(const std::vector<Box>& boxes, const std::vector<float>& scores,
                                  float iou_threshold) {
  return NmsOver(AllIndices(boxes.size()), boxes, scores, iou_threshold);
}

std::vector<int64_t> BatchedNmsReference(const std::vector<Box>& boxes,
                                         const std::vector<float>& scores,
                                         const std::vector<int64_t>& idxs, float iou_threshold,
                                         int64_t split_threshold) {
  if (boxes.empty()) return {};
  float max_coordinate = boxes[0][0];
  for (const Box& b : boxes) {
    for (float v : b) max_coordinate = std::max(max_coordinate, v);
  }
  std::vector<Box> shifted(boxes.size());
  for (size_t i = 0; i < boxes.size(); ++i) {
    const float offset = static_cast<float>(idxs[i]) * (max_coordinate + 1.0f);
    for (int k = 0; k < 4; ++k) shifted[i][k] = boxes[i][k] + offset;
  }
  if (static_cast<int64_t>(boxes.size()) < split_threshold) {
    return NmsReference(shifted, scores, iou_threshold);
  }
  return PerIdx(shifted, scores, idxs, iou_threshold);
}

std::vector<int64_t> PerClassNmsReference(const std::vector<Box>& boxes,
                                          const std::vector<float>& scores,
                                          const std::vector<int64_t>& idxs, float iou_threshold) {
  return PerIdx(boxes, scores, idxs, iou_threshold);
}

}  // namespace iis::ops::reference
