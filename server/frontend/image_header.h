// Reads the format and pixel size of an encoded image from its header, without decoding it.
//
// The front end calls this on every encoded image before the request goes to the engine, so that
// decompression bombs (a small file that declares a huge canvas) and files that are not images are
// refused with INVALID_ARGUMENT before any pixel memory is allocated. Parsing is done by hand from
// the format specifications (JPEG SOF segments, PNG IHDR, RIFF/WebP VP8/VP8L/VP8X, BMP info
// headers) and only reads the bytes it needs; it never reads past `bytes`.
//
// This library depends on abseil only, so the model runtime may use it as well.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace iis {

enum class ImageFormat { kJpeg, kPng, kWebp, kBmp };

// Returns "JPEG", "PNG", "WebP" or "BMP".
std::string_view ImageFormatName(ImageFormat format);

struct ImageHeader {
  ImageFormat format = ImageFormat::kJpeg;
  int64_t width = 0;   // pixels, >= 1
  int64_t height = 0;  // pixels, >= 1
};

// Size limits applied to every image, encoded or raw.
struct ImageLimits {
  // Largest width x height accepted. Default 40 megapixels (server_config.proto Limits).
  int64_t max_pixels = 40'000'000;
  // Longest side accepted, in pixels. Default 16384.
  int64_t max_side = 16384;
};

// Parses the header of a JPEG, PNG, WebP or BMP file and returns its format and size.
// Besides the header it checks the cheap structural signs of truncation: a JPEG must have an
// end-of-image marker after its first scan, a PNG's chunk chain must reach IEND within `bytes`
// (and IHDR's CRC must match), a WebP's RIFF size must fit in `bytes`, an uncompressed BMP's pixel
// array must fit in `bytes`.
// Errors: INVALID_ARGUMENT with a message that says what was wrong ("not a JPEG, PNG, WebP or BMP
// file", "PNG is truncated: ...", "JPEG is corrupt: ..."). Thread-safe (pure function).
absl::StatusOr<ImageHeader> ProbeImageHeader(std::string_view bytes);

// Checks `width` x `height` against `limits`. Errors: INVALID_ARGUMENT, e.g. "image is
// 100000x100000 = 10000000000 pixels, the limit is 40000000" or "image is 20000x10 pixels, the
// longest side allowed is 16384". Thread-safe.
absl::Status CheckImageSize(int64_t width, int64_t height, const ImageLimits& limits);

}  // namespace iis
