// The error type of the checkpoint reader (models/checkpoint/).
#pragma once

#include <string>

#include <c10/util/Exception.h>

namespace iis::models::checkpoint {

// Thrown by every function in models/checkpoint/ when a file cannot be read or trusted (I/O
// failure, truncation, corruption, a format or a pickle feature this reader refuses) and when
// weights do not fit a model. It is a c10::Error, so the runtime's LibTorch error boundary (see
// docs/architecture.md) handles it like any other LibTorch error. The message names the file (or
// the weights' source) it is about, what was expected and what was found; what() returns the
// message alone, without a C++ backtrace.
class CheckpointError : public c10::Error {
 public:
  explicit CheckpointError(std::string message);

  const char* what() const noexcept override;
};

}  // namespace iis::models::checkpoint
