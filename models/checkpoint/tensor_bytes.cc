#include "models/checkpoint/tensor_bytes.h"

#include <c10/util/StringUtil.h>

#include "models/checkpoint/checkpoint_error.h"

namespace iis::models::checkpoint {

void CheckBoolBytes(const void* data, uint64_t size, const std::string& what) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (uint64_t i = 0; i < size; ++i) {
    if (bytes[i] > 1) {
      throw CheckpointError(c10::str(what, " holds the byte ", static_cast<int>(bytes[i]),
                                     " at offset ", i, " (a bool is 0 or 1)"));
    }
  }
}

}  // namespace iis::models::checkpoint
