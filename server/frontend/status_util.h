// The one place where absl::Status becomes grpc::Status (the front end's error boundary).
#pragma once

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace iis {

// Returns the grpc::Status with the same canonical code and message. Codes gRPC does not know
// (none today) become UNKNOWN. Thread-safe.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace iis
