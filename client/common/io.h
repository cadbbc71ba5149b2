// Small file helpers with error messages that name the file and the reason.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace iis::client {

// Returns the whole content of `path`. `what` says what the file is for (e.g. "--ca-cert") and
// starts the error message. Fails with NOT_FOUND when the file does not exist, INVALID_ARGUMENT
// when it is a directory, and UNAVAILABLE on any other read error. Thread-safe.
absl::StatusOr<std::string> ReadFileToString(absl::string_view what, const std::string& path);

// Writes `data` to `path`, replacing the file. Fails with UNAVAILABLE (message names the path and
// the reason) when it cannot be written. Thread-safe for distinct paths.
absl::Status WriteStringToFile(const std::string& path, absl::string_view data);

}  // namespace iis::client
