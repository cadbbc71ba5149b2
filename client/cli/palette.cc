#include "client/cli/palette.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "opencv2/core.hpp"
#include "opencv2/imgproc.hpp"

namespace iis::client {
namespace {

// A fully saturated, bright colour of hue `turns` (0..1), in BGR.
cv::Scalar HueColour(double turns) {
  const double hue = turns - std::floor(turns);
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(hue * 180.0, 220, 240));
  cv::Mat bgr;
  cv::cvtColor(hsv, bgr, cv::COLOR_HSV2BGR);
  const cv::Vec3b c = bgr.at<cv::Vec3b>(0, 0);
  return cv::Scalar(c[0], c[1], c[2]);
}

constexpr double kGoldenRatioTurn = 0.6180339887498949;

}  // namespace

absl::StatusOr<std::vector<PaletteEntry>> ParsePaletteTsv(absl::string_view tsv) {
  std::vector<PaletteEntry> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(tsv, '\n')) {
    ++line_number;
    line = absl::StripTrailingAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const std::vector<absl::string_view> fields = absl::StrSplit(line, '\t');
    int index = -1, r = -1, g = -1, b = -1;
    const bool parsed = fields.size() == 5 && absl::SimpleAtoi(fields[0], &index) &&
                        absl::SimpleAtoi(fields[2], &r) && absl::SimpleAtoi(fields[3], &g) &&
                        absl::SimpleAtoi(fields[4], &b);
    if (!parsed || index != static_cast<int>(entries.size()) || r < 0 || r > 255 || g < 0 ||
        g > 255 || b < 0 || b > 255 || fields[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("palette line ", line_number, ": expected '", entries.size(),
                       "<TAB>name<TAB>R<TAB>G<TAB>B' with 0..255 colours, got '", line, "'"));
    }
    entries.push_back(PaletteEntry{index, std::string(fields[1]), cv::Scalar(b, g, r)});
  }
  return entries;
}

const std::vector<PaletteEntry>& Ade20kPalette() {
  static const auto* const kPalette = [] {
    auto parsed = ParsePaletteTsv(kAde20kPaletteTsv);
    // The file is part of the build; a broken one is a build defect, caught by the unit test.
    return new std::vector<PaletteEntry>(parsed.ok() ? *std::move(parsed)
                                                     : std::vector<PaletteEntry>{});
  }();
  return *kPalette;
}

cv::Scalar SegmentationColour(int class_id) {
  const auto& palette = Ade20kPalette();
  if (class_id >= 0 && class_id < static_cast<int>(palette.size())) {
    return palette[class_id].bgr;
  }
  return HueColour(class_id * kGoldenRatioTurn);
}

cv::Scalar InstanceColour(int index) { return HueColour(0.05 + index * kGoldenRatioTurn); }

}  // namespace iis::client
