// Slow, obviously correct NMS for tests: direct transcriptions of the definitions in ops/nms.h,
// O(N^2), no sorting tricks, no vectorisation.
//
// The IoU is computed in float32 with the formula of the spec, not in double: NMS is a threshold
// decision, and the spec (mmcv bit-for-bit parity) defines which float32 operations produce the
// value compared, so a double-precision IoU would disagree exactly at the threshold.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace iis::ops::reference {

using Box = std::array<float, 4>;  // x1, y1, x2, y2

// Returns IoU(a, b) in float32 as the spec defines it (inter / (area_a + area_b - inter), with
// areas and intersection computed without +1), and 0 when the union is 0.
float Iou(const Box& a, const Box& b);

// Returns the indices of `boxes` kept by greedy NMS: boxes visited by decreasing score (ties:
// lower index first; NaN scores first), each kept box suppressing later boxes whose IoU with it
// is > iou_threshold.
std::vector<int64_t> NmsReference(const std::vector<Box>& boxes, const std::vector<float>& scores,
                                  float iou_threshold);

// Transcribes mmcv's batched_nms: boxes shifted by float32(idx) * (max coordinate + 1); one
// NmsReference call when N < split_threshold, else one per distinct idx (on the shifted boxes)
// with the survivors sorted by decreasing score (ties: lower index first).
std::vector<int64_t> BatchedNmsReference(const std::vector<Box>& boxes,
                                         const std::vector<float>& scores,
                                         const std::vector<int64_t>& idxs, float iou_threshold,
                                         int64_t split_threshold);

// The mathematical definition of class-aware NMS: NmsReference on each idx's unshifted boxes,
// survivors sorted by decreasing score (ties: lower index first). Equals BatchedNmsReference
// whenever the shift does not change any rounding (e.g. small integer coordinates).
std::vector<int64_t> PerClassNmsReference(const std::vector<Box>& boxes,
                                          const std::vector<float>& scores,
                                          const std::vector<int64_t>& idxs, float iou_threshold);

}  // namespace iis::ops::reference
