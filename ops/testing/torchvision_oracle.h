// Parity tests against torchvision: runs a small Python script under an interpreter that has
// torch and torchvision, exchanging tensors as raw files in a private temporary folder. Nothing
// of torchvision is copied into this repository; its ops are only called at test time.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace iis::ops::reference {

// One temporary folder holding a script's inputs and outputs. Not thread-safe.
class TorchvisionOracle {
 public:
  // Creates the temporary folder (under $TMPDIR or /tmp). Throws std::runtime_error on failure.
  TorchvisionOracle();
  // Removes the folder and everything in it.
  ~TorchvisionOracle();
  TorchvisionOracle(const TorchvisionOracle&) = delete;
  TorchvisionOracle& operator=(const TorchvisionOracle&) = delete;

  // Returns why parity tests cannot run on this machine, or "" when they can. The interpreter is
  // $IIS_PYTHON, else /usr/bin/python3 (Debian's, which has torch), else python3 from PATH; it
  // must import torch and torchvision. The answer is computed once. Thread-safe.
  static const std::string& Unavailable();

  // Writes a CPU tensor (float32 or int64) as raw native-endian bytes to <folder>/<name>.bin,
  // readable with numpy.fromfile(name + ".bin", dtype).
  void Write(const std::string& name, const at::Tensor& tensor);

  // Runs `script` with the folder as working directory. Returns "" on success, otherwise the exit
  // status and the script's output.
  std::string Run(const std::string& script);

  // Reads <folder>/<name>.bin as a 1-D CPU tensor of `dtype` (float32 or int64). Throws
  // std::runtime_error when the file is missing or its size is not a multiple of the element size.
  at::Tensor Read(const std::string& name, at::ScalarType dtype);

 private:
  std::string folder_;
};

}  // namespace iis::ops::reference
