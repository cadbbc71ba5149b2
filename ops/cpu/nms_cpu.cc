// CPU kernels of iis::nms and iis::batched_nms (semantics in ops/nms.h).
//
// Boxes are sorted once (stable, by decreasing score) and copied in that order into
// structure-of-arrays form with their areas precomputed. The greedy pass keeps the first live box
// and evaluates its IoU against all later live boxes in one branch-free loop that the compiler
// vectorises; the survivors are then compacted, so each pass only touches boxes that are still
// alive and the work shrinks as boxes are suppressed. batched_nms runs one greedy pass per idx
// (in parallel on mmcv's split path, N >= 10000), both on that path and whenever it can prove
// that the single pass mmcv makes below 10000 boxes keeps the same set (OffsetsSeparateGroups).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "ops/nms.h"

namespace iis::ops {
namespace {

// A box to sort: its group (idx, or 0 for plain NMS), score and index.
struct Entry {
  int64_t group;
  float score;
  int64_t index;
};

// The visiting order: by group, then by decreasing score with NaN first (the order of
// torch.sort(descending=True)), then by increasing index. Entries are distinct, so the order is
// total and std::sort gives the stable result.
bool Before(const Entry& a, const Entry& b) {
  if (a.group != b.group) return a.group < b.group;
  const bool a_nan = std::isnan(a.score);
  const bool b_nan = std::isnan(b.score);
  if (a_nan != b_nan) return a_nan;
  if (!a_nan && a.score != b.score) return a.score > b.score;
  return a.index < b.index;
}

// Live boxes of one greedy pass, in score order, as structure of arrays.
struct Workspace {
  std::vector<float> x1, y1, x2, y2, area;
  std::vector<int64_t> index;
  std::vector<uint8_t> suppressed;
};

// Sets flags[j] = IoU(box i, box j) > threshold for the n boxes j given as arrays, computing IoU
// with mmcv's float operations, and returns how many were set. Branch-free so it vectorises.
int64_t MarkSuppressed(float ix1, float iy1, float ix2, float iy2, float iarea,
                       const float* __restrict x1, const float* __restrict y1,
                       const float* __restrict x2, const float* __restrict y2,
                       const float* __restrict area, int64_t n, float threshold,
                       uint8_t* __restrict flags) {
  int64_t count = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float xx1 = std::max(ix1, x1[j]);
    const float yy1 = std::max(iy1, y1[j]);
    const float xx2 = std::min(ix2, x2[j]);
    const float yy2 = std::min(iy2, y2[j]);
    const float w = std::max(0.0f, xx2 - xx1);
    const float h = std::max(0.0f, yy2 - yy1);
    const float inter = w * h;
    // A zero union gives 0 / 0 = NaN, and NaN > threshold is false: such pairs never suppress.
    const float iou = inter / (iarea + area[j] - inter);
    const uint8_t flag = iou > threshold;
    flags[j] = flag;
    count += flag;
  }
  return count;
}

// Runs greedy NMS over the boxes order[0..n) (indices into the (N, 4) array `boxes`, already in
// visiting order), each shifted by offsets[index] when `offsets` is not null, and appends the kept
// indices to `keep` in visiting order.
void GreedyNms(const float* boxes, const float* offsets, const int64_t* order, int64_t n,
               float threshold, Workspace* ws, std::vector<int64_t>* keep) {
  ws->x1.resize(n);
  ws->y1.resize(n);
  ws->x2.resize(n);
  ws->y2.resize(n);
  ws->area.resize(n);
  ws->index.resize(n);
  ws->suppressed.resize(n);
  float* x1 = ws->x1.data();
  float* y1 = ws->y1.data();
  float* x2 = ws->x2.data();
  float* y2 = ws->y2.data();
  float* area = ws->area.data();
  int64_t* index = ws->index.data();
  for (int64_t p = 0; p < n; ++p) {
    const int64_t i = order[p];
    const float* b = boxes + i * 4;
    if (offsets != nullptr) {
      x1[p] = b[0] + offsets[i];
      y1[p] = b[1] + offsets[i];
      x2[p] = b[2] + offsets[i];
      y2[p] = b[3] + offsets[i];
    } else {
      x1[p] = b[0];
      y1[p] = b[1];
      x2[p] = b[2];
      y2[p] = b[3];
    }
    area[p] = (x2[p] - x1[p]) * (y2[p] - y1[p]);
    index[p] = i;
  }

  int64_t live = n;  // boxes [0, live) are kept or not yet visited
  for (int64_t p = 0; p < live; ++p) {
    keep->push_back(index[p]);
    const int64_t rest = live - p - 1;
    uint8_t* flags = ws->suppressed.data();
    const int64_t dropped =
        MarkSuppressed(x1[p], y1[p], x2[p], y2[p], area[p], x1 + p + 1, y1 + p + 1, x2 + p + 1,
                       y2 + p + 1, area + p + 1, rest, threshold, flags);
    if (dropped == 0) continue;
    int64_t out = p + 1;
    for (int64_t q = 0; q < rest; ++q) {
      if (flags[q]) continue;
      const int64_t from = p + 1 + q;
      x1[out] = x1[from];
      y1[out] = y1[from];
      x2[out] = x2[from];
      y2[out] = y2[from];
      area[out] = area[from];
      index[out] = index[from];
      ++out;
    }
    live = out;
  }
}

// Copies `values` into a new int64 CPU tensor.
at::Tensor ToTensor(const std::vector<int64_t>& values) {
  at::Tensor out = at::empty({static_cast<int64_t>(values.size())}, at::kLong);
  if (!values.empty()) {
    std::memcpy(out.data_ptr<int64_t>(), values.data(), values.size() * sizeof(int64_t));
  }
  return out;
}

// Returns every box's indices sorted by Before(), with group = groups[i] (0 when null).
std::vector<Entry> SortedEntries(const float* scores, const int64_t* groups, int64_t n) {
  std::vector<Entry> entries(n);
  for (int64_t i = 0; i < n; ++i) entries[i] = {groups != nullptr ? groups[i] : 0, scores[i], i};
  std::sort(entries.begin(), entries.end(), Before);
  return entries;
}

void CheckOnCpu(const char* op, const at::Tensor& boxes) {
  TORCH_CHECK(boxes.device().is_cpu(), op, " (CPU kernel): boxes must be on the CPU, got ",
              boxes.device());
}

at::Tensor NmsCpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  CheckNmsArguments("iis::nms", boxes, scores, iou_threshold);
  CheckOnCpu("iis::nms", boxes);
  const at::Tensor b = boxes.contiguous();
  const at::Tensor s = scores.contiguous();
  const int64_t n = b.size(0);
  const std::vector<Entry> entries = SortedEntries(s.data_ptr<float>(), nullptr, n);
  std::vector<int64_t> order(n);
  for (int64_t p = 0; p < n; ++p) order[p] = entries[p].index;
  Workspace ws;
  std::vector<int64_t> keep;
  GreedyNms(b.data_ptr<float>(), nullptr, order.data(), n, static_cast<float>(iou_threshold), &ws,
            &keep);
  return ToTensor(keep);
}

// Returns true when mmcv's shift (box + float(idx) * step, step = max coordinate + 1) provably
// keeps boxes of different idx from overlapping, so that one NMS over all shifted boxes keeps
// exactly what one NMS per idx over the same shifted boxes keeps (merged by score, ties by index):
// every coordinate is finite and >= 0, so idx k's shifted boxes lie in [k * step, k * step + max]
// and the next idx starts at least 1 further on; and |idx * step| < 2^22, so every shifted value
// has an ulp <= 1/2 and rounding cannot close that gap. The RPN (levels) and RCNN (classes) boxes,
// clipped to the image, always qualify; this turns the RPN's one O(N * kept) pass into five
// smaller ones.
bool OffsetsSeparateGroups(const float* boxes, const int64_t* groups, int64_t n, float step) {
  for (int64_t i = 0; i < n * 4; ++i) {
    if (!(boxes[i] >= 0.0f) || std::isinf(boxes[i])) return false;
  }
  constexpr double kLimit = 1 << 22;
  for (int64_t i = 0; i < n; ++i) {
    if (std::abs(static_cast<double>(groups[i]) * step) >= kLimit) return false;
  }
  return true;
}

at::Tensor BatchedNmsCpu(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                         double iou_threshold) {
  CheckBatchedNmsArguments(boxes, scores, idxs, iou_threshold);
  CheckOnCpu("iis::batched_nms", boxes);
  const int64_t n = boxes.size(0);
  if (n == 0) return at::empty({0}, at::kLong);
  const at::Tensor b = boxes.contiguous();
  const at::Tensor s = scores.contiguous();
  const at::Tensor groups = idxs.to(at::kLong).contiguous();
  const float* box_data = b.data_ptr<float>();
  const float* score_data = s.data_ptr<float>();
  const int64_t* group_data = groups.data_ptr<int64_t>();
  const float threshold = static_cast<float>(iou_threshold);

  // mmcv: boxes + (idxs.to(boxes) * (boxes.max() + 1))[:, None], in float32 (max propagates NaN).
  float max_coordinate = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n * 4; ++i) {
    const float v = box_data[i];
    if (std::isnan(v)) {
      max_coordinate = v;
      break;
    }
    if (v > max_coordinate) max_coordinate = v;
  }
  const float step = max_coordinate + 1.0f;
  std::vector<float> offsets(n);
  for (int64_t i = 0; i < n; ++i) offsets[i] = static_cast<float>(group_data[i]) * step;

  if (n < kBatchedNmsSplitThreshold && !OffsetsSeparateGroups(box_data, group_data, n, step)) {
    const std::vector<Entry> entries = SortedEntries(score_data, nullptr, n);
    std::vector<int64_t> order(n);
    for (int64_t p = 0; p < n; ++p) order[p] = entries[p].index;
    Workspace ws;
    std::vector<int64_t> keep;
    GreedyNms(box_data, offsets.data(), order.data(), n, threshold, &ws, &keep);
    return ToTensor(keep);
  }

  // One NMS per idx value (mmcv's split path, or the single call when the groups cannot interact),
  // each over its boxes in score order, in parallel.
  const std::vector<Entry> entries = SortedEntries(score_data, group_data, n);
  std::vector<int64_t> order(n);
  std::vector<int64_t> group_begin;
  for (int64_t p = 0; p < n; ++p) {
    order[p] = entries[p].index;
    if (p == 0 || entries[p].group != entries[p - 1].group) group_begin.push_back(p);
  }
  const int64_t num_groups = static_cast<int64_t>(group_begin.size());
  group_begin.push_back(n);
  std::vector<std::vector<int64_t>> kept(num_groups);
  // Below the split size the whole job takes a few milliseconds: waking an OpenMP team can cost
  // more than that on a busy machine, so small jobs stay on the calling thread.
  const int64_t grain = n >= kBatchedNmsSplitThreshold ? 1 : num_groups;
  at::parallel_for(0, num_groups, grain, [&](int64_t begin, int64_t end) {
    Workspace ws;
    for (int64_t g = begin; g < end; ++g) {
      GreedyNms(box_data, offsets.data(), order.data() + group_begin[g],
                group_begin[g + 1] - group_begin[g], threshold, &ws, &kept[g]);
    }
  });

  // Merge the survivors by decreasing score, ties by index.
  std::vector<Entry> survivors;
  for (const auto& group : kept) {
    for (int64_t i : group) survivors.push_back({0, score_data[i], i});
  }
  std::sort(survivors.begin(), survivors.end(), Before);
  std::vector<int64_t> keep(survivors.size());
  for (size_t p = 0; p < survivors.size(); ++p) keep[p] = survivors[p].index;
  return ToTensor(keep);
}

}  // namespace

TORCH_LIBRARY_IMPL(iis, CPU, m) {
  m.impl("nms", &NmsCpu);
  m.impl("batched_nms", &BatchedNmsCpu);
}

}  // namespace iis::ops
