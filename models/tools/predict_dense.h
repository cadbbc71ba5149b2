// The detection (Mask R-CNN) and segmentation (UperNet) modes of internimage-predict.
//
// Image mode runs the official preprocessing on each file and the model on it alone (a batch of
// one, so the answer equals the official single-image inference), then writes into the output
// folder, per image <stem>.json (detection) or <stem>.png (segmentation):
//   <stem>.json: {"image", "width", "height", "model", "weights", "detections": [{"box": [x1, y1,
//                x2, y2] (original pixels), "score", "label" (0-based COCO index), "name",
//                "mask": {"size": [height, width], "counts": [...]}} ...]}, best score first;
//                counts is COCO uncompressed RLE (column-major, starting with a run of zeros).
//   <stem>.png:  8-bit grayscale label map at the original size, pixel = ADE20K class index
//                (0 = wall; add 1 for the official submission format).
// Array mode (--input X.npy, float32 N x 3 x H x W, already resized and normalised, H and W
// multiples of 32) treats the array as N resized images with scale factor 1 and writes the raw
// outputs for parity checks:
//   dets.npy:   float32 N x 100 x 6 rows (x1, y1, x2, y2, score, label) in input coordinates,
//               best first, padded with rows of -1 (detection), and
//   mask_probs.npy: float32 N x 100 x 28 x 28, each detection's mask probabilities (0 rows for
//               padding);
//   logits.npy: float32 N x 150 x H x W decode-head logits resized to the input (segmentation).
// Not thread-safe (it writes files); meant for the runner's main().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/registry.h"

namespace iis::models::tools {

struct DensePredictRequest {
  std::string weights;  // checkpoint file; empty: seeded random weights (with a warning)
  uint64_t seed = 0;    // seed of the random weights
  bool reference = false;  // ATen reference backbone instead of the optimised CPU plan
  std::vector<std::string> images;  // image mode: files to run
  std::string input;                // array mode: the .npy file
  std::string output_dir;           // where the result files go (created when missing)
  double score_threshold = 0.05;    // detection: keep scores above this (>= 0.05)
};

// Runs `arch` (a detection or segmentation architecture) as `request` says, in float32 on the CPU,
// and writes the files described above; prints one summary line per image to stdout. Returns 0.
// Throws std::exception with a message naming the file or argument on failure (unreadable image
// or array, wrong array shape, two images with the same stem, unwritable folder, bad weights).
int RunDensePrediction(const Architecture& arch, const DensePredictRequest& request);

// Returns the bytes of the file at `path`. Throws std::runtime_error naming it when it cannot
// be opened. (Shared by both modes of the runner.)
std::string ReadFileBytes(const std::string& path);

}  // namespace iis::models::tools
