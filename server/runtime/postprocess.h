// Per-request postprocessing of network outputs into the engine's answers (torch-free; runs on the
// runtime's worker pool). Thread-safe: pure functions.
#pragma once

#include <string>
#include <vector>

#include "server/engine/engine.h"
#include "server/runtime/network.h"

namespace iis::runtime {

// Returns the `top_k` most probable classes, best first (ties: lower class id first); top_k 0
// means kDefaultTopK (engine.h), and no more classes than there are are returned.
ClassifyResult TopClasses(const ClassificationOutput& output, int top_k,
                          const std::vector<std::string>& class_names);

// Converts detections: applies the request's score threshold (strictly greater) and maximum
// count, names the classes, and pastes each mask into a COCO RLE at the original image size
// (skipped when options.masks is false).
DetectResult ToDetectResult(const DetectionOutput& output, const DetectOptions& options,
                            const std::vector<std::string>& class_names);

// Converts a label map: per-class pixel counts (most pixels first) and, unless counts_only, the
// map as an 8-bit single-channel PNG.
SegmentResult ToSegmentResult(const SegmentationOutput& output, bool counts_only,
                              const std::vector<std::string>& class_names);

}  // namespace iis::runtime
