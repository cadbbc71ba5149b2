// Class names (and the ADE20K palette) the served models answer with, embedded in the binary from
// models/data/ so nothing is read from disk at run time. Thread-safe (immutable after first use).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace iis::models {

// The 1,000 ImageNet-1k names in InternImage's output order (sorted WNIDs).
const std::vector<std::string>& ImageNetClassNames();
// The 80 COCO names in mmdetection's label order.
const std::vector<std::string>& CocoClassNames();
// The 150 ADE20K names in mmsegmentation's order (0 is "wall").
const std::vector<std::string>& Ade20kClassNames();
// The ADE20K drawing palette (RGB), one entry per class.
const std::vector<std::array<uint8_t, 3>>& Ade20kPalette();

}  // namespace iis::models
