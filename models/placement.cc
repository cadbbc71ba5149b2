#include "models/placement.h"

#include <cctype>

namespace iis::models {

std::optional<DeviceSpec> ParseDevice(std::string_view text) {
  if (text == "auto") return DeviceSpec{DeviceSpec::Kind::kAuto, -1};
  if (text == "cpu") return DeviceSpec{DeviceSpec::Kind::kCpu, -1};
  if (text == "cuda") return DeviceSpec{DeviceSpec::Kind::kCuda, -1};
  constexpr std::string_view kPrefix = "cuda:";
  if (text.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  const std::string_view digits = text.substr(kPrefix.size());
  if (digits.empty() || digits.size() > 3) return std::nullopt;
  int index = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    index = index * 10 + (c - '0');
  }
  return DeviceSpec{DeviceSpec::Kind::kCuda, index};
}

std::optional<Precision> ParsePrecision(std::string_view text) {
  if (text == "float32") return Precision::kFloat32;
  if (text == "float16") return Precision::kFloat16;
  if (text == "bfloat16") return Precision::kBFloat16;
  return std::nullopt;
}

std::string_view PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kFloat16:
      return "float16";
    case Precision::kBFloat16:
      return "bfloat16";
    case Precision::kFloat32:
      break;
  }
  return "float32";
}

std::string PrecisionProblem(Precision precision, DeviceSpec::Kind device) {
  if (precision == Precision::kFloat32 || device != DeviceSpec::Kind::kCpu) return "";
  return std::string("precision ") + std::string(PrecisionName(precision)) + " needs a CUDA device";
}

}  // namespace iis::models
