#include "server/frontend/image_header.h"

#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"

namespace iis {
namespace {

using ::testing::HasSubstr;

constexpr char kSkimageData[] = "/usr/lib/python3/dist-packages/skimage/data";

std::string Encode(const cv::Mat& image, const std::string& ext, std::vector<int> params = {}) {
  std::vector<uchar> buffer;
  EXPECT_TRUE(cv::imencode(ext, image, buffer, params)) << ext;
  return std::string(buffer.begin(), buffer.end());
}

cv::Mat Noise(int width, int height, int type = CV_8UC3) {
  cv::Mat image(height, width, type);
  cv::randu(image, 0, 255);
  return image;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void PutBe32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xFF));
}
void PutLe(std::string& s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// A PNG chunk with its CRC computed by zlib (an implementation independent of the probe's).
std::string PngChunk(const std::string& type, const std::string& data) {
  std::string chunk;
  PutBe32(chunk, static_cast<uint32_t>(data.size()));
  const std::string body = type + data;
  chunk += body;
  PutBe32(chunk, static_cast<uint32_t>(
                     crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())));
  return chunk;
}

// A syntactically complete PNG that declares `width` x `height` (its IDAT is not real data).
std::string CraftedPng(uint32_t width, uint32_t height) {
  std::string ihdr;
  PutBe32(ihdr, width);
  PutBe32(ihdr, height);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, deflate, no interlace
  return std::string("\x89PNG\r\n\x1A\n", 8) + PngChunk("IHDR", ihdr) +
         PngChunk("IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8)) +
         PngChunk("IEND", "");
}

// A JPEG whose frame header declares `width` x `height`, followed by an empty scan and EOI.
std::string CraftedJpeg(uint16_t width, uint16_t height) {
  std::string s("\xFF\xD8", 2);
  s += std::string("\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", 18);
  s += std::string("\xFF\xC0\x00\x11\x08", 5);
  s.push_back(static_cast<char>(height >> 8));
  s.push_back(static_cast<char>(height & 0xFF));
  s.push_back(static_cast<char>(width >> 8));
  s.push_back(static_cast<char>(width & 0xFF));
  s += std::string("\x03\x01\x11\x00\x02\x11\x00\x03\x11\x00", 10);
  s += std::string("\xFF\xDA\x00\x0C\x03\x01\x00\x02\x00\x03\x00\x00\x3F\x00", 14);
  s += std::string("\x12\x34\xFF\xD9", 4);
  return s;
}

// A RIFF/WebP file whose first chunk is `fourcc` with `payload`.
std::string CraftedWebp(const std::string& fourcc, const std::string& payload) {
  std::string chunk = fourcc;
  PutLe(chunk, payload.size(), 4);
  chunk += payload;
  std::string s = "RIFF";
  PutLe(s, 4 + chunk.size(), 4);
  return s + "WEBP" + chunk;
}

std::string Vp8xPayload(uint32_t width, uint32_t height) {
  std::string p(4, '\0');  // flags + reserved
  PutLe(p, width - 1, 3);
  PutLe(p, height - 1, 3);
  return p;
}

// A BMP with a Windows info header of `info_size` bytes (or the 12-byte OS/2 core header).
std::string CraftedBmp(int32_t width, int32_t height, int bits, uint32_t info_size = 40,
                       bool with_pixels = true) {
  const uint64_t row = (static_cast<uint64_t>(width < 0 ? -width : width) * bits + 31) / 32 * 4;
  const uint64_t rows = height < 0 ? -static_cast<int64_t>(height) : height;
  std::string info;
  PutLe(info, info_size, 4);
  if (info_size == 12) {
    PutLe(info, static_cast<uint16_t>(width), 2);
    PutLe(info, static_cast<uint16_t>(height), 2);
    PutLe(info, 1, 2);
    PutLe(info, bits, 2);
  } else {
    PutLe(info, static_cast<uint32_t>(width), 4);
    PutLe(info, static_cast<uint32_t>(height), 4);
    PutLe(info, 1, 2);
    PutLe(info, bits, 2);
    info.resize(info_size, '\0');  // compression 0 and the rest zero
  }
  const uint32_t offset = 14 + info_size;
  std::string s = "BM";
  PutLe(s, offset + (with_pixels ? row * rows : 0), 4);
  PutLe(s, 0, 4);
  PutLe(s, offset, 4);
  s += info;
  if (with_pixels) s += std::string(row * rows, '\x7F');
  return s;
}

void ExpectHeader(const std::string& bytes, ImageFormat format, int64_t width, int64_t height) {
  absl::StatusOr<ImageHeader> header = ProbeImageHeader(bytes);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->format, format) << ImageFormatName(header->format);
  EXPECT_EQ(header->width, width);
  EXPECT_EQ(header->height, height);
}

void ExpectInvalid(const std::string& bytes, const std::string& fragment) {
  absl::StatusOr<ImageHeader> header = ProbeImageHeader(bytes);
  ASSERT_FALSE(header.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_EQ(header.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(header.status().message()), HasSubstr(fragment));
}

struct EncodedCase {
  std::string ext;
  std::vector<int> params;
  ImageFormat format;
  int type;
};

std::vector<EncodedCase> EncodedCases() {
  return {
      {".jpg", {}, ImageFormat::kJpeg, CV_8UC3},
      {".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1}, ImageFormat::kJpeg, CV_8UC3},
      {".jpg", {}, ImageFormat::kJpeg, CV_8UC1},
      {".png", {}, ImageFormat::kPng, CV_8UC3},
      {".png", {}, ImageFormat::kPng, CV_16UC1},
      {".png", {}, ImageFormat::kPng, CV_8UC4},
      {".webp", {cv::IMWRITE_WEBP_QUALITY, 80}, ImageFormat::kWebp, CV_8UC3},   // VP8
      {".webp", {cv::IMWRITE_WEBP_QUALITY, 101}, ImageFormat::kWebp, CV_8UC3},  // VP8L
      {".bmp", {}, ImageFormat::kBmp, CV_8UC3},
      {".bmp", {}, ImageFormat::kBmp, CV_8UC1},
  };
}

TEST(ImageHeaderTest, ReadsSizeOfOpenCvEncodedImages) {
  for (const EncodedCase& c : EncodedCases()) {
    for (auto [w, h] : {std::pair{1, 1}, {37, 23}, {23, 37}, {640, 480}, {3, 1001}}) {
      SCOPED_TRACE(c.ext + " " + std::to_string(w) + "x" + std::to_string(h));
      ExpectHeader(Encode(Noise(w, h, c.type), c.ext, c.params), c.format, w, h);
    }
  }
}

TEST(ImageHeaderTest, ReadsSizeOfRealFilesLikeTheDecoderDoes) {
  if (!std::filesystem::is_directory(kSkimageData)) {
    GTEST_SKIP() << kSkimageData << " is missing (python3-skimage not installed)";
  }
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kSkimageData)) {
    const std::string ext = entry.path().extension();
    if (ext != ".png" && ext != ".jpg") continue;
    const std::string bytes = ReadFile(entry.path());
    const cv::Mat decoded =
        cv::imdecode(cv::Mat(1, bytes.size(), CV_8UC1, const_cast<char*>(bytes.data())),
                     cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
    absl::StatusOr<ImageHeader> header = ProbeImageHeader(bytes);
    if (entry.path().filename() == "truncated.jpg") {
      ASSERT_FALSE(header.ok());
      EXPECT_THAT(std::string(header.status().message()), HasSubstr("JPEG is truncated"));
      continue;
    }
    ASSERT_FALSE(decoded.empty()) << entry.path();
    ASSERT_TRUE(header.ok()) << entry.path() << ": " << header.status();
    EXPECT_EQ(header->width, decoded.cols) << entry.path();
    EXPECT_EQ(header->height, decoded.rows) << entry.path();
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(ImageHeaderTest, EveryTruncationOfAnEncodedFileIsRefused) {
  for (const EncodedCase& c : EncodedCases()) {
    const std::string full = Encode(Noise(13, 7, c.type), c.ext, c.params);
    for (size_t length = 0; length < full.size(); ++length) {
      absl::StatusOr<ImageHeader> header = ProbeImageHeader(full.substr(0, length));
      ASSERT_FALSE(header.ok()) << c.ext << " cut to " << length << " of " << full.size();
      EXPECT_EQ(header.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(ImageHeaderTest, RandomCorruptionNeverCrashesAndKeepsSizesPlausible) {
  std::mt19937 rng(12345);
  for (const EncodedCase& c : EncodedCases()) {
    const std::string full = Encode(Noise(29, 17, c.type), c.ext, c.params);
    for (int trial = 0; trial < 300; ++trial) {
      std::string bytes = full;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips; ++i) {
        bytes[rng() % std::min<size_t>(bytes.size(), 64)] = static_cast<char>(rng());
      }
      absl::StatusOr<ImageHeader> header = ProbeImageHeader(bytes);
      if (header.ok()) {
        EXPECT_GE(header->width, 1);
        EXPECT_GE(header->height, 1);
      } else {
        EXPECT_EQ(header.status().code(), absl::StatusCode::kInvalidArgument);
      }
    }
  }
}

TEST(ImageHeaderTest, CraftedHeadersDeclaringHugeSizesAreReadWithoutDecoding) {
  ExpectHeader(CraftedPng(100000, 100000), ImageFormat::kPng, 100000, 100000);
  ExpectHeader(CraftedJpeg(65535, 65535), ImageFormat::kJpeg, 65535, 65535);
  ExpectHeader(CraftedWebp("VP8X", Vp8xPayload(1 << 24, 1 << 24)), ImageFormat::kWebp, 1 << 24,
               1 << 24);
  ExpectHeader(CraftedBmp(30000, -20000, 1), ImageFormat::kBmp, 30000, 20000);  // top-down

  absl::Status status = CheckImageSize(100000, 100000, ImageLimits{});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "image is 100000x100000 = 10000000000 pixels, the limit is 40000000");
}

TEST(ImageHeaderTest, CraftedSmallHeadersOfEveryVariant) {
  ExpectHeader(CraftedJpeg(321, 123), ImageFormat::kJpeg, 321, 123);
  ExpectHeader(CraftedPng(5, 9), ImageFormat::kPng, 5, 9);
  ExpectHeader(CraftedWebp("VP8X", Vp8xPayload(640, 480)), ImageFormat::kWebp, 640, 480);
  ExpectHeader(CraftedBmp(7, 3, 24), ImageFormat::kBmp, 7, 3);
  ExpectHeader(CraftedBmp(7, 3, 8, 12), ImageFormat::kBmp, 7, 3);    // OS/2 core header
  ExpectHeader(CraftedBmp(7, 3, 32, 124), ImageFormat::kBmp, 7, 3);  // V5 header
}

TEST(ImageHeaderTest, ExplainsWhatIsWrong) {
  ExpectInvalid("", "image is empty");
  ExpectInvalid("GIF89a\x01\x00\x01\x00", "not a JPEG, PNG, WebP or BMP file");
  ExpectInvalid("hello world", "starting with \"hello wo\"");

  std::string png = CraftedPng(5, 9);
  png[20] ^= 0x01;  // height changes, CRC no longer matches
  ExpectInvalid(png, "PNG is corrupt: IHDR CRC mismatch");
  std::string no_iend = CraftedPng(5, 9);
  no_iend.resize(no_iend.size() - 12);
  ExpectInvalid(no_iend, "PNG is truncated");
  ExpectInvalid(CraftedPng(0, 9), "IHDR declares 0x9");

  ExpectInvalid(CraftedJpeg(0, 10), "declares width 0");
  ExpectInvalid(CraftedJpeg(10, 0), "declares height 0");
  std::string jpeg = CraftedJpeg(10, 10);
  ExpectInvalid(jpeg.substr(0, jpeg.size() - 2), "no end-of-image marker");
  ExpectInvalid(jpeg.substr(0, 30), "JPEG is truncated");
  std::string sos_first("\xFF\xD8\xFF\xDA\x00\x02\x00\xFF\xD9", 9);
  ExpectInvalid(sos_first, "scan (SOS) comes before the frame header");

  ExpectInvalid(CraftedWebp("ABCD", std::string(10, '\0')), "unknown first chunk 'ABCD'");
  std::string webp = CraftedWebp("VP8X", Vp8xPayload(4, 4));
  ExpectInvalid(webp.substr(0, webp.size() - 1), "WebP is truncated");

  ExpectInvalid(CraftedBmp(7, 3, 24, 40, /*with_pixels=*/false), "BMP is truncated");
  ExpectInvalid(CraftedBmp(7, 3, 13), "unsupported bits per pixel 13");
  ExpectInvalid(CraftedBmp(0, 3, 24), "declares 0x3");
  ExpectInvalid(CraftedBmp(7, 3, 24, 77), "unsupported info header size 77");
}

TEST(ImageHeaderTest, CheckImageSizeAppliesBothLimits) {
  const ImageLimits limits{/*max_pixels=*/1000, /*max_side=*/100};
  EXPECT_TRUE(CheckImageSize(100, 10, limits).ok());
  EXPECT_TRUE(CheckImageSize(1, 1, limits).ok());
  absl::Status side = CheckImageSize(101, 2, limits);
  EXPECT_EQ(side.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(side.message(), "image is 101x2 pixels, the longest side allowed is 100");
  EXPECT_THAT(std::string(CheckImageSize(40, 30, limits).message()),
              HasSubstr("40x30 = 1200 pixels, the limit is 1000"));
  EXPECT_THAT(std::string(CheckImageSize(0, 30, limits).message()), HasSubstr("must be >= 1"));
  EXPECT_THAT(std::string(CheckImageSize(int64_t{1} << 40, int64_t{1} << 40, limits).message()),
              HasSubstr("more than 2^63"));
}

}  // namespace
}  // namespace iis
