// Pillow-compatible image resampling (uint8), so our classification preprocessing equals the
// official evaluation pipeline (torchvision transforms on PIL images) pixel for pixel.
//
// The algorithm follows Pillow's Resample.c as documented by its behaviour: a separable
// convolution whose support grows with the downscale factor (antialiasing), coefficients
// normalised per output pixel and rounded to 22-bit fixed point, a horizontal pass into an
// intermediate uint8 image (rounded and clamped), then a vertical pass. Pure C++, thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace iis::models::preprocess {

enum class PilFilter { kBilinear, kBicubic };

// An interleaved 8-bit image view: rows of width * channels bytes, `stride` bytes apart.
struct ImageView8 {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  int channels = 3;
  int64_t stride = 0;
};

// The output window of a resize: only pixels [x0, x0 + width) x [y0, y0 + height) of the full
// out_width x out_height result are computed (a centre crop costs only what it keeps).
struct ResizeWindow {
  int x0 = 0;
  int y0 = 0;
  int width = 0;
  int height = 0;
};

// Resizes `src` to out_width x out_height like PIL.Image.resize(size, filter) and returns the
// pixels of `window` (interleaved, window.width * channels bytes per row). Equal to Pillow 9.x for
// 8-bit images. Throws std::invalid_argument for empty sizes or a window outside the output.
std::vector<uint8_t> PilResize(const ImageView8& src, int out_width, int out_height,
                               const ResizeWindow& window, PilFilter filter = PilFilter::kBicubic);

}  // namespace iis::models::preprocess
