// Pasting a Mask R-CNN mask into the original image and encoding it as COCO RLE, torch-free.
//
// mmdetection 2.x (FCNMaskHead.get_seg_masks / _do_paste_mask, CPU path) samples the 28x28
// probabilities with F.grid_sample(bilinear, zeros padding, align_corners=False) at the centre of
// every image pixel of the box's neighbourhood and keeps pixels whose value is >= 0.5
// (docs/detection-segmentation.md E.4). PasteMask reproduces that float32 arithmetic operation by
// operation (that of LibTorch's vectorised CPU grid sampler), so the binary masks equal mmdet's
// bit for bit. Only the neighbourhood of the box is computed: one detection of a 4000x3000 photo
// costs the box's area, never the image's.
//
// All functions are pure and thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace iis::models::detection {

// A binary mask that is zero outside the window [x0, x0 + width) x [y0, y0 + height) of an image.
struct MaskWindow {
  int x0 = 0;
  int y0 = 0;
  int width = 0;  // 0 when the mask is empty
  int height = 0;
  std::vector<uint8_t> bits;  // height x width, row-major, 0 or 1

  // Returns the mask value at image pixel (x, y) (0 outside the window).
  uint8_t At(int x, int y) const {
    if (x < x0 || y < y0 || x >= x0 + width || y >= y0 + height) return 0;
    return bits[static_cast<size_t>(y - y0) * width + (x - x0)];
  }
};

// Returns the box mmdetection pastes a detection's mask with: it multiplies the (rescaled)
// detection box by the scale factor to get the mask RoI and divides it again for pasting, which in
// float32 can move a coordinate by one ulp. `box` is [x1, y1, x2, y2] in original-image pixels.
std::array<float, 4> MmdetPasteBox(const std::array<float, 4>& box, float scale_x, float scale_y);

// Pastes `probs` (mask_size x mask_size row-major probabilities, e.g. the 28x28 sigmoid output of
// the detection's class) over `box` ([x1, y1, x2, y2], original-image pixels, from MmdetPasteBox
// for mmdet parity) in an image_width x image_height image and thresholds at `threshold`
// (value >= threshold is 1). The window is mmdet's: floor(x1) - 1 .. ceil(x2) + 1 clipped to the
// image (likewise y). Degenerate boxes follow mmdet: infinite grid coordinates become 0, NaN ones
// give 0. Throws std::invalid_argument (naming the argument) when mask_size < 1, the image size
// is not positive, `probs` is null, or a box coordinate is not finite.
MaskWindow PasteMask(const float* probs, int mask_size, const std::array<float, 4>& box,
                     int image_height, int image_width, float threshold = 0.5f);

// Encodes the image_height x image_width mask `window` as COCO uncompressed RLE: run lengths in
// column-major (Fortran) order, alternating 0-runs and 1-runs and starting with a 0-run (which may
// be 0 long). The runs sum to height * width. Only the window's pixels are visited. Throws
// std::invalid_argument when the window does not lie inside the image or bits has the wrong size.
std::vector<uint64_t> EncodeRle(const MaskWindow& window, int image_height, int image_width);

}  // namespace iis::models::detection
