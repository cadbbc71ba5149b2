#include "models/checkpoint/checkpoint_error.h"

#include <utility>

namespace iis::models::checkpoint {

// `{}` is "no backtrace" whichever type c10::Error takes it as: a std::string in LibTorch 1.x and
// early 2.x, a lazily computed pointer in later releases.
CheckpointError::CheckpointError(std::string message) : c10::Error(std::move(message), {}) {}

const char* CheckpointError::what() const noexcept { return what_without_backtrace(); }

}  // namespace iis::models::checkpoint
