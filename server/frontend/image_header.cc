#include "server/frontend/image_header.h"

#include <array>
#include <cstdlib>
#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace iis {
namespace {

constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();

uint8_t Byte(absl::string_view b, size_t pos) { return static_cast<uint8_t>(b[pos]); }
uint32_t Be16(absl::string_view b, size_t pos) { return (Byte(b, pos) << 8) | Byte(b, pos + 1); }
uint32_t Be32(absl::string_view b, size_t pos) {
  return (static_cast<uint32_t>(Be16(b, pos)) << 16) | Be16(b, pos + 2);
}
uint32_t Le16(absl::string_view b, size_t pos) { return Byte(b, pos) | (Byte(b, pos + 1) << 8); }
uint32_t Le24(absl::string_view b, size_t pos) { return Le16(b, pos) | (Byte(b, pos + 2) << 16); }
uint32_t Le32(absl::string_view b, size_t pos) {
  return Le16(b, pos) | (static_cast<uint32_t>(Le16(b, pos + 2)) << 16);
}

absl::Status Corrupt(absl::string_view format, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(format, " is corrupt: ", what));
}
absl::Status Truncated(absl::string_view format, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(format, " is truncated: ", what));
}

// CRC-32 (ISO-HDLC, the one PNG uses), table-driven.
uint32_t Crc32(absl::string_view data) {
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> table{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return table;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (char ch : data) crc = kTable[(crc ^ static_cast<uint8_t>(ch)) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

// JPEG (ITU T.81): a chain of marker segments; the frame header (SOFn) carries the size.
absl::StatusOr<ImageHeader> ProbeJpeg(absl::string_view b) {
  constexpr absl::string_view kName = "JPEG";
  const size_t n = b.size();
  size_t pos = 2;  // after SOI
  ImageHeader header{ImageFormat::kJpeg, 0, 0};
  bool have_frame = false;
  while (true) {
    if (pos >= n) {
      return Truncated(kName, have_frame ? "the data ends before the first scan"
                                         : "the data ends before the frame header (SOF)");
    }
    if (Byte(b, pos) != 0xFF) {
      return Corrupt(kName, absl::StrCat("expected a marker at offset ", pos, ", found byte 0x",
                                         absl::Hex(Byte(b, pos), absl::kZeroPad2)));
    }
    while (pos < n && Byte(b, pos) == 0xFF) ++pos;  // fill bytes
    if (pos >= n) return Truncated(kName, "the data ends inside a marker");
    const uint8_t marker = Byte(b, pos++);
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length field
    if (marker == 0xD8 || marker == 0xD9 || marker == 0x00) {
      return Corrupt(kName,
                     absl::StrCat("unexpected marker 0xFF", absl::Hex(marker, absl::kZeroPad2),
                                  " at offset ", pos - 2, " before the first scan"));
    }
    if (pos + 2 > n) return Truncated(kName, "the data ends inside a segment length");
    const size_t length = Be16(b, pos);
    if (length < 2) {
      return Corrupt(kName, absl::StrCat("segment at offset ", pos - 2, " has length ", length));
    }
    if (pos + length > n) {
      return Truncated(kName, absl::StrCat("segment 0xFF", absl::Hex(marker, absl::kZeroPad2),
                                           " at offset ", pos - 2, " declares ", length,
                                           " bytes but only ", n - pos, " remain"));
    }
    const bool is_frame =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (is_frame) {
      if (have_frame) return Corrupt(kName, "more than one frame header (SOF)");
      if (length < 8) return Corrupt(kName, absl::StrCat("frame header length ", length));
      header.height = Be16(b, pos + 3);
      header.width = Be16(b, pos + 5);
      const size_t components = Byte(b, pos + 7);
      if (components == 0 || length != 8 + 3 * components) {
        return Corrupt(kName, absl::StrCat("frame header declares ", components, " components in ",
                                           length, " bytes"));
      }
      if (header.width == 0) return Corrupt(kName, "the frame header declares width 0");
      if (header.height == 0) {
        return Corrupt(kName,
                       "the frame header declares height 0 (DNL-defined height is not "
                       "supported)");
      }
      have_frame = true;
    } else if (marker == 0xDA) {  // start of scan
      if (!have_frame) return Corrupt(kName, "a scan (SOS) comes before the frame header (SOF)");
      // Entropy-coded data never contains 0xFF 0xD9 (0xFF is byte-stuffed), so the first one
      // after the scan header is the end-of-image marker.
      if (b.find("\xFF\xD9", pos + length) == absl::string_view::npos) {
        return Truncated(kName, "no end-of-image marker after the scan data");
      }
      return header;
    }
    pos += length;
  }
}

bool ValidPngDepth(uint8_t color_type, uint8_t depth) {
  switch (color_type) {
    case 0:
      return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3:
      return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:
    case 4:
    case 6:
      return depth == 8 || depth == 16;
    default:
      return false;
  }
}

// PNG: 8-byte signature, IHDR first, then chunks up to IEND (each: length, type, data, CRC).
absl::StatusOr<ImageHeader> ProbePng(absl::string_view b) {
  constexpr absl::string_view kName = "PNG";
  const size_t n = b.size();
  constexpr size_t kIhdrEnd = 8 + 8 + 13 + 4;
  if (n < kIhdrEnd)
    return Truncated(kName, absl::StrCat("the data ends in the IHDR chunk (", n, " bytes)"));
  if (b.substr(12, 4) != "IHDR" || Be32(b, 8) != 13) {
    return Corrupt(kName, absl::StrCat("the first chunk is '", absl::CHexEscape(b.substr(12, 4)),
                                       "' of ", Be32(b, 8), " bytes, expected IHDR of 13"));
  }
  if (Crc32(b.substr(12, 17)) != Be32(b, 29)) return Corrupt(kName, "IHDR CRC mismatch");
  ImageHeader header{ImageFormat::kPng, Be32(b, 16), Be32(b, 20)};
  if (header.width == 0 || header.height == 0 || header.width > kMaxInt32 ||
      header.height > kMaxInt32) {
    return Corrupt(kName, absl::StrCat("IHDR declares ", header.width, "x", header.height));
  }
  const uint8_t depth = Byte(b, 24), color_type = Byte(b, 25);
  if (!ValidPngDepth(color_type, depth)) {
    return Corrupt(kName,
                   absl::StrCat("invalid bit depth ", depth, " for colour type ", color_type));
  }
  if (Byte(b, 26) != 0 || Byte(b, 27) != 0 || Byte(b, 28) > 1) {
    return Corrupt(kName, "unknown compression, filter or interlace method");
  }
  bool have_data = false;
  for (size_t pos = kIhdrEnd;;) {
    if (pos + 12 > n) {
      return Truncated(kName,
                       absl::StrCat("the data ends at offset ", n, " without an IEND chunk"));
    }
    const size_t length = Be32(b, pos);
    const absl::string_view type = b.substr(pos + 4, 4);
    for (char c : type) {
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
        return Corrupt(kName, absl::StrCat("invalid chunk type '", absl::CHexEscape(type),
                                           "' at offset ", pos));
      }
    }
    if (length > static_cast<size_t>(kMaxInt32)) {
      return Corrupt(kName, absl::StrCat("chunk '", type, "' declares ", length, " bytes"));
    }
    if (length + 12 > n - pos) {
      return Truncated(kName, absl::StrCat("chunk '", type, "' at offset ", pos, " declares ",
                                           length, " bytes but only ", n - pos - 12, " remain"));
    }
    if (type == "IDAT") have_data = true;
    if (type == "IEND") break;
    pos += length + 12;
  }
  if (!have_data) return Corrupt(kName, "no image data (IDAT chunk)");
  return header;
}

// WebP: RIFF container; the first chunk is VP8 (lossy), VP8L (lossless) or VP8X (extended).
absl::StatusOr<ImageHeader> ProbeWebp(absl::string_view b) {
  constexpr absl::string_view kName = "WebP";
  const size_t n = b.size();
  const size_t riff_size = Le32(b, 4);
  if (riff_size < 4 + 8) return Corrupt(kName, absl::StrCat("RIFF size ", riff_size));
  if (riff_size + 8 > n) {
    return Truncated(kName, absl::StrCat("the RIFF header declares ", riff_size + 8,
                                         " bytes, the data has ", n));
  }
  if (n < 20) return Truncated(kName, "the data ends in the first chunk header");
  const absl::string_view fourcc = b.substr(12, 4);
  const size_t size = Le32(b, 16);
  if (size > n - 20) {
    return Truncated(kName, absl::StrCat("chunk '", absl::CHexEscape(fourcc), "' declares ", size,
                                         " bytes but only ", n - 20, " remain"));
  }
  ImageHeader header{ImageFormat::kWebp, 0, 0};
  if (fourcc == "VP8 ") {
    if (size < 10) return Corrupt(kName, absl::StrCat("VP8 chunk of ", size, " bytes"));
    if ((Byte(b, 20) & 1) != 0) return Corrupt(kName, "the VP8 frame is not a key frame");
    if (Byte(b, 23) != 0x9D || Byte(b, 24) != 0x01 || Byte(b, 25) != 0x2A) {
      return Corrupt(kName, "missing VP8 start code");
    }
    header.width = Le16(b, 26) & 0x3FFF;
    header.height = Le16(b, 28) & 0x3FFF;
    if (header.width == 0 || header.height == 0) {
      return Corrupt(kName, absl::StrCat("VP8 frame of ", header.width, "x", header.height));
    }
  } else if (fourcc == "VP8L") {
    if (size < 5) return Corrupt(kName, absl::StrCat("VP8L chunk of ", size, " bytes"));
    if (Byte(b, 20) != 0x2F) return Corrupt(kName, "missing VP8L signature");
    const uint32_t bits = Le32(b, 21);
    if ((bits >> 29) != 0) return Corrupt(kName, "unknown VP8L version");
    header.width = (bits & 0x3FFF) + 1;
    header.height = ((bits >> 14) & 0x3FFF) + 1;
  } else if (fourcc == "VP8X") {
    if (size < 10) return Corrupt(kName, absl::StrCat("VP8X chunk of ", size, " bytes"));
    header.width = static_cast<int64_t>(Le24(b, 24)) + 1;
    header.height = static_cast<int64_t>(Le24(b, 27)) + 1;
  } else {
    return Corrupt(kName, absl::StrCat("unknown first chunk '", absl::CHexEscape(fourcc),
                                       "' (expected VP8, VP8L or VP8X)"));
  }
  return header;
}

// BMP: 14-byte file header, then an OS/2 core header (12 bytes) or a Windows info header.
absl::StatusOr<ImageHeader> ProbeBmp(absl::string_view b) {
  constexpr absl::string_view kName = "BMP";
  const size_t n = b.size();
  if (n < 18) return Truncated(kName, "the data ends in the file header");
  const size_t data_offset = Le32(b, 10);
  const uint32_t info_size = Le32(b, 14);
  int64_t width = 0, height = 0;
  uint32_t planes = 0, bits = 0, compression = 0;
  if (info_size == 12) {
    if (n < 26) return Truncated(kName, "the data ends in the info header");
    width = Le16(b, 18);
    height = Le16(b, 20);
    planes = Le16(b, 22);
    bits = Le16(b, 24);
  } else if (info_size == 40 || info_size == 52 || info_size == 56 || info_size == 64 ||
             info_size == 108 || info_size == 124) {
    if (n < 14 + 20) return Truncated(kName, "the data ends in the info header");
    width = static_cast<int32_t>(Le32(b, 18));
    height = static_cast<int32_t>(Le32(b, 22));
    planes = Le16(b, 26);
    bits = Le16(b, 28);
    compression = Le32(b, 30);
  } else {
    return Corrupt(kName, absl::StrCat("unsupported info header size ", info_size));
  }
  height = std::abs(height);  // negative: rows stored top-down
  if (width <= 0 || height == 0) {
    return Corrupt(kName, absl::StrCat("the info header declares ", width, "x", height));
  }
  if (planes != 1) return Corrupt(kName, absl::StrCat("planes = ", planes, ", expected 1"));
  if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32) {
    return Corrupt(kName, absl::StrCat("unsupported bits per pixel ", bits));
  }
  const bool uncompressed = compression == 0 || compression == 3 || compression == 6;
  if (!uncompressed && compression != 1 && compression != 2) {
    return Corrupt(kName, absl::StrCat("unsupported compression ", compression));
  }
  if (uncompressed) {
    const uint64_t row_bytes = (static_cast<uint64_t>(width) * bits + 31) / 32 * 4;
    const uint64_t available = data_offset <= n ? n - data_offset : 0;
    if (data_offset > n || row_bytes > available / static_cast<uint64_t>(height)) {
      return Truncated(
          kName, absl::StrCat("the pixel array needs ", height, " rows of ", row_bytes,
                              " bytes from offset ", data_offset, ", the data has ", n, " bytes"));
    }
  }
  return ImageHeader{ImageFormat::kBmp, width, height};
}

}  // namespace

std::string_view ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kWebp:
      return "WebP";
    case ImageFormat::kBmp:
      return "BMP";
  }
  return "unknown";
}

absl::StatusOr<ImageHeader> ProbeImageHeader(std::string_view data) {
  const absl::string_view bytes(data.data(), data.size());
  if (bytes.empty()) return absl::InvalidArgumentError("image is empty (0 bytes)");
  if (bytes.size() >= 3 && Byte(bytes, 0) == 0xFF && Byte(bytes, 1) == 0xD8 &&
      Byte(bytes, 2) == 0xFF) {
    return ProbeJpeg(bytes);
  }
  if (bytes.substr(0, 8) == absl::string_view("\x89PNG\r\n\x1A\n", 8)) return ProbePng(bytes);
  if (bytes.size() >= 12 && bytes.substr(0, 4) == "RIFF" && bytes.substr(8, 4) == "WEBP") {
    return ProbeWebp(bytes);
  }
  if (bytes.size() >= 2 && bytes.substr(0, 2) == "BM") return ProbeBmp(bytes);
  return absl::InvalidArgumentError(absl::StrCat("image is not a JPEG, PNG, WebP or BMP file (",
                                                 bytes.size(), " bytes starting with \"",
                                                 absl::CHexEscape(bytes.substr(0, 8)), "\")"));
}

absl::Status CheckImageSize(int64_t width, int64_t height, const ImageLimits& limits) {
  if (width < 1 || height < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("image is ", width, "x", height, " pixels, both sides must be >= 1"));
  }
  int64_t pixels = 0;
  const bool overflow = __builtin_mul_overflow(width, height, &pixels);
  if (overflow || pixels > limits.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image is ", width, "x", height, " = ", overflow ? "more than 2^63" : absl::StrCat(pixels),
        " pixels, the limit is ", limits.max_pixels));
  }
  if (width > limits.max_side || height > limits.max_side) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image is ", width, "x", height, " pixels, the longest side allowed is ", limits.max_side));
  }
  return absl::OkStatus();
}

}  // namespace iis
