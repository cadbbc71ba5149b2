// Minimal start-up and lifecycle logging of the server binaries (stderr, one line per message).
// (Debian 12's abseil has no absl/log; glog would be a second logging style for one function.)
#pragma once

#include "absl/strings/string_view.h"

namespace iis::common {

enum class LogSeverity { kInfo, kWarning, kError };

// Writes "I20240102 15:04:05.123456 message" (W/E for warnings and errors) and a newline to
// stderr as one write, so lines from several threads never interleave. Thread-safe.
void Log(LogSeverity severity, absl::string_view message);

}  // namespace iis::common
