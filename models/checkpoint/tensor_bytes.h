// Checks on tensor bytes read from a file, shared by the torch.save and safetensors readers.
#pragma once

#include <cstdint>
#include <string>

namespace iis::models::checkpoint {

// Throws CheckpointError("<what> holds the byte B at offset I (a bool is 0 or 1)") unless each of
// the `size` bytes at `data` is 0 or 1; any other byte would be undefined behaviour as a C++
// bool. Thread-safe (pure function).
void CheckBoolBytes(const void* data, uint64_t size, const std::string& what);

}  // namespace iis::models::checkpoint
