#include "ops/testing/torchvision_oracle.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "tests/testing/paths.h"

namespace iis::ops::reference {
namespace {

std::string Interpreter() {
  if (const char* env = std::getenv("IIS_PYTHON"); env != nullptr && *env != '\0') return env;
  if (std::filesystem::exists("/usr/bin/python3")) return "/usr/bin/python3";
  return "python3";
}

size_t ElementSize(at::ScalarType dtype) {
  if (dtype == at::kFloat) return sizeof(float);
  if (dtype == at::kLong) return sizeof(int64_t);
  throw std::runtime_error("TorchvisionOracle: only float32 and int64 tensors are exchanged");
}

}  // namespace

TorchvisionOracle::TorchvisionOracle() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/iis-torchvision-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    throw std::runtime_error("TorchvisionOracle: cannot create a folder from " + pattern);
  }
  folder_ = buffer.data();
}

TorchvisionOracle::~TorchvisionOracle() {
  std::error_code ignored;
  std::filesystem::remove_all(folder_, ignored);
}

const std::string& TorchvisionOracle::Unavailable() {
  static const std::string reason = [] {
    const std::string python = Interpreter();
    const std::string command = "'" + python + "' -c 'import torch, torchvision' > /dev/null 2>&1";
    if (std::system(command.c_str()) == 0) return std::string();
    return "no Python interpreter with torch and torchvision (tried " + python +
           "; set IIS_PYTHON)";
  }();
  return reason;
}

void TorchvisionOracle::Write(const std::string& name, const at::Tensor& tensor) {
  const at::Tensor t = tensor.contiguous();
  const size_t bytes = static_cast<size_t>(t.numel()) * ElementSize(t.scalar_type());
  std::ofstream out(folder_ + "/" + name + ".bin", std::ios::binary);
  out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(bytes));
  if (!out) throw std::runtime_error("TorchvisionOracle: cannot write " + name);
}

std::string TorchvisionOracle::Run(const std::string& script) {
  {
    std::ofstream out(folder_ + "/script.py");
    out << script;
  }
  const std::string command =
      "cd '" + folder_ + "' && '" + Interpreter() + "' script.py > output.txt 2>&1";
  const int status = std::system(command.c_str());
  if (status == 0) return "";
  std::ostringstream message;
  message << "python exited with status " << status << ":\n"
          << testing_paths::ReadFileBytes(folder_ + "/output.txt");
  return message.str();
}

at::Tensor TorchvisionOracle::Read(const std::string& name, at::ScalarType dtype) {
  const std::string path = folder_ + "/" + name + ".bin";
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error("TorchvisionOracle: the script wrote no " + name + ".bin");
  }
  const std::string bytes = testing_paths::ReadFileBytes(path);
  const size_t element = ElementSize(dtype);
  if (bytes.size() % element != 0) {
    throw std::runtime_error("TorchvisionOracle: " + name + ".bin has a partial element");
  }
  at::Tensor t = at::empty({static_cast<int64_t>(bytes.size() / element)}, dtype);
  std::copy(bytes.begin(), bytes.end(), static_cast<char*>(t.data_ptr()));
  return t;
}

}  // namespace iis::ops::reference
