// Whole-file reads and writes with error messages that name the file, its purpose and the reason.
// The one file helper of the server, the clients and internimage-predict. Thread-safe for distinct
// paths.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace iis::common {

// Returns the whole content of `path`. `what` says what the file is for (e.g. "--ca-cert",
// "configuration file") and starts every error message. Errors: NOT_FOUND when the file does not
// exist, INVALID_ARGUMENT when it is a directory, PERMISSION_DENIED when it may not be read,
// UNAVAILABLE on any other open or read error.
absl::StatusOr<std::string> ReadFile(absl::string_view what, const std::string& path);

// Writes `data` to `path`, replacing the file. Errors: UNAVAILABLE naming the path and the reason
// when it cannot be created or written.
absl::Status WriteFile(const std::string& path, absl::string_view data);

// Writes `data` to "<path>.tmp" and renames it to `path`, so a concurrent reader sees either the
// old file or the whole new one, never a part. Errors: as WriteFile, UNAVAILABLE when the rename
// fails.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view data);

}  // namespace iis::common
