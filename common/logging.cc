#include "common/logging.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace iis::common {

void Log(LogSeverity severity, absl::string_view message) {
  const char letter = severity == LogSeverity::kInfo      ? 'I'
                      : severity == LogSeverity::kWarning ? 'W'
                                                          : 'E';
  const std::string line = absl::StrCat(
      std::string(1, letter),
      absl::FormatTime("%Y%m%d %H:%M:%E6S ", absl::Now(), absl::LocalTimeZone()), message, "\n");
  // One write(2) per line; a short write (a full pipe) just loses the rest of the line.
  const ssize_t written = ::write(STDERR_FILENO, line.data(), line.size());
  (void)written;
}

}  // namespace iis::common
