// Where and in which precision a model runs, as configurations and command lines spell it:
// devices "auto", "cpu", "cuda", "cuda:N" and precisions "float32", "float16", "bfloat16". The one
// parser of both, used by the server configuration's validation, the runtime (which resolves
// "auto" and checks that the device exists) and internimage-predict. Dependency-free, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace iis::models {

struct DeviceSpec {
  enum class Kind { kAuto, kCpu, kCuda };
  Kind kind = Kind::kAuto;
  // kCuda: the device index, or -1 for "cuda" (instances spread over the GPUs).
  int index = -1;
};

// Parses "auto", "cpu", "cuda" or "cuda:N" (N: 1 to 3 decimal digits). Returns nullopt otherwise.
std::optional<DeviceSpec> ParseDevice(std::string_view text);

// The accepted device spellings, for error messages: "auto, cpu, cuda or cuda:N".
inline constexpr std::string_view kDeviceSyntax = "auto, cpu, cuda or cuda:N";

enum class Precision { kFloat32, kFloat16, kBFloat16 };

// Parses "float32", "float16" or "bfloat16". Returns nullopt otherwise.
std::optional<Precision> ParsePrecision(std::string_view text);

// Returns "float32", "float16" or "bfloat16".
std::string_view PrecisionName(Precision precision);

// The accepted precision spellings, for error messages.
inline constexpr std::string_view kPrecisionSyntax = "float32, float16 or bfloat16";

// Returns why `precision` cannot run on a device of kind `device` (kCpu or kCuda; kAuto is
// checked once it is resolved), or an empty string when it can. The one rule: half precisions
// need a CUDA device.
std::string PrecisionProblem(Precision precision, DeviceSpec::Kind device);

}  // namespace iis::models
