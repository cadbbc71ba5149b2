// The detection (Mask R-CNN) and segmentation (UperNet) modes of internimage-predict.
//
// Image mode runs the official preprocessing on each file and the model on it alone (a batch of
// one, so the answer equals the official single-image inference). Without an output folder it
// prints a summary per image to stdout: the best detections (class, score, box in original
// pixels), or the classes of the label map with their share of the pixels. With one it writes per
// image <stem>.json (detection) or <stem>.png (segmentation):
//   <stem>.json: {"image", "width", "height", "model", "weights", "detections": [{"box": [x1, y1,
//                x2, y2] (original pixels), "score", "label" (0-based COCO index), "name",
//                "mask": {"size": [height, width], "counts": [...]}} ...]}, best score first;
//                counts is COCO uncompressed RLE (column-major, starting with a run of zeros).
//   <stem>.png:  8-bit grayscale label map at the original size, pixel = ADE20K class index
//                (0 = wall; add 1 for the official submission format).
// Array mode (--input X.npy, float32 N x 3 x H x W, already resized and normalised, H and W
// multiples of 32) treats the array as N resized images with scale factor 1 and writes the raw
// outputs for parity checks into the output folder (required):
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
  std::string weights;     // checkpoint file; empty: seeded random weights (with a warning)
  uint64_t seed = 0;       // seed of the random weights
  bool reference = false;  // ATen reference backbone instead of the optimised CPU plan
  std::vector<std::string> images;  // image mode: files to run
  std::string input;                // array mode: the .npy file
  std::string output_dir;           // where result files go (created when missing); empty in
                                    // image mode: print summaries instead
  double score_threshold = 0.05;    // detection: keep scores above this, in [0.05, 1]
};

// Runs `arch` (a detection or segmentation architecture) as `request` says, in float32 on the CPU,
// and writes the files or prints the summaries described above. Returns 0. Throws
// std::exception with a message naming the file or argument on failure (unreadable image or
// array, wrong array shape, --input without an output folder, two images with the same stem,
// unwritable folder, bad weights).
int RunDensePrediction(const Architecture& arch, const DensePredictRequest& request);

}  // namespace iis::models::tools
