// Colours of the client's pictures: the ADE20K-150 palette for segmentation maps (embedded from
// models/data/ade20k150_classes.tsv at build time) and distinct colours for detected instances.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "opencv2/core/types.hpp"

namespace iis::client {

struct PaletteEntry {
  int class_id = 0;
  std::string name;
  cv::Scalar bgr;  // OpenCV channel order
};

// Parses the palette file format: '#' comment lines, then "index<TAB>name<TAB>R<TAB>G<TAB>B"
// lines with indices 0, 1, 2, ... in order. Fails with INVALID_ARGUMENT naming the line.
absl::StatusOr<std::vector<PaletteEntry>> ParsePaletteTsv(absl::string_view tsv);

// Returns the embedded ADE20K-150 palette (150 entries, index 0 is "wall"). Thread-safe.
const std::vector<PaletteEntry>& Ade20kPalette();

// Returns the colour of segmentation class `class_id`: the palette's for 0..149, a generated
// (stable, well-spread) one beyond.
cv::Scalar SegmentationColour(int class_id);

// Returns the colour of the `index`-th detected instance: saturated hues a golden-ratio turn
// apart, so neighbouring indices always differ clearly.
cv::Scalar InstanceColour(int index);

// The embedded copy of models/data/ade20k150_classes.tsv (generated source).
extern const char kAde20kPaletteTsv[];

}  // namespace iis::client
