// Process exit codes of internimage-client and internimage-loadgen, and gRPC status code names.
//
// Scripts branch on these, so they are part of the tools' interface and printed by --help:
//   0        success
//   1        an unexpected failure inside the tool
//   2        bad command line
//   3        a local file could not be read, decoded or written
//   4        health: the server answered but is not SERVING
//   5        loadgen: the run completed but some requests failed (figures are still written)
//   10 + c   the server (or the channel) answered with gRPC status code c, e.g.
//            13 INVALID_ARGUMENT, 14 DEADLINE_EXCEEDED, 15 NOT_FOUND, 18 RESOURCE_EXHAUSTED,
//            24 UNAVAILABLE (also: target unreachable), 26 UNAUTHENTICATED
#pragma once

#include <string>

#include "grpcpp/support/status.h"

namespace iis::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitIo = 3;
inline constexpr int kExitNotServing = 4;
inline constexpr int kExitRequestErrors = 5;
inline constexpr int kExitRpcBase = 10;

// Returns the exit code for a failed RPC: kExitRpcBase + the canonical code (kExitOk for OK).
int ExitCodeForRpc(grpc::StatusCode code);

// Returns the canonical name of a gRPC status code ("NOT_FOUND"), or "CODE_<n>" when unknown.
std::string StatusCodeName(grpc::StatusCode code);

// Returns the exit-code table above as --help text (one code per line, indented by two spaces).
std::string ExitCodesHelp();

}  // namespace iis::client
