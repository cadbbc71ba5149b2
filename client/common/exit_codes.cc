#include "client/common/exit_codes.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace iis::client {

int ExitCodeForRpc(grpc::StatusCode code) {
  return code == grpc::StatusCode::OK ? kExitOk : kExitRpcBase + static_cast<int>(code);
}

std::string StatusCodeName(grpc::StatusCode code) {
  const int value = static_cast<int>(code);
  // gRPC's canonical codes and absl::StatusCode share their numbers (0..16).
  if (value < 0 || value > static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)) {
    return absl::StrCat("CODE_", value);
  }
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(value));
}

std::string ExitCodesHelp() {
  std::string text =
      "  0   success\n"
      "  1   unexpected failure inside the tool\n"
      "  2   bad command line\n"
      "  3   a local file could not be read, decoded or written\n"
      "  4   health: the server answered but is not SERVING\n"
      "  5   loadgen: the run completed but some requests failed\n";
  for (int code = 1; code <= static_cast<int>(grpc::StatusCode::UNAUTHENTICATED); ++code) {
    absl::StrAppendFormat(&text, "  %-3d server/channel status %s\n", kExitRpcBase + code,
                          StatusCodeName(static_cast<grpc::StatusCode>(code)));
  }
  return text;
}

}  // namespace iis::client
