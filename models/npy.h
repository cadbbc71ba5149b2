// Reading and writing NumPy .npy files (format versions 1.0-3.0), torch-free.
//
// Used by internimage-predict to exchange arrays with external checks and by tests. Supports
// little-endian float32, float64, int64, int32, uint8 and bool, C order only. Thread-safe.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace iis::models {

class NpyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct NpyArray {
  std::string dtype;  // NumPy descr: "<f4", "<f8", "<i8", "<i4", "|u1", "|b1"
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // C-order element bytes

  int64_t NumElements() const;
  size_t ElementSize() const;
};

// Reads `path`. Throws NpyError naming the file and the problem (missing file, bad magic,
// unsupported dtype, Fortran order, size mismatch).
NpyArray ReadNpy(const std::string& path);

// Writes `array` to `path` (format 1.0). Throws NpyError when the file cannot be written or the
// data size does not match the shape.
void WriteNpy(const std::string& path, const NpyArray& array);

}  // namespace iis::models
