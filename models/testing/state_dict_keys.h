// Test helpers: a module's state-dict layout and the official key lists it must equal
// (tests/fixtures/keys/*.tsv). Header-only; used by the models' key tests.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "tests/testing/paths.h"

namespace iis::models::testing_keys {

// (name, shape) rows; shape is "AxBxC", or "scalar" for 0-d tensors.
using KeyShapes = std::vector<std::pair<std::string, std::string>>;

// Returns the path of tests/fixtures/keys/<name>.tsv: an official checkpoint's entry names and
// shapes in checkpoint order (see tests/fixtures/keys/README.md).
inline std::string KeyFixturePath(const std::string& name) {
  return testing_paths::SourceDir() + "/tests/fixtures/keys/" + name + ".tsv";
}

// Reads KeyFixturePath(name): "name<TAB>shape" rows in checkpoint order. Returns no rows when the
// file is missing (the caller's size assertion then says so).
inline KeyShapes ReadKeyFixture(const std::string& name) {
  std::ifstream in(KeyFixturePath(name));
  KeyShapes rows;
  std::string line;
  while (std::getline(in, line)) {
    const auto tab = line.find('\t');
    if (tab != std::string::npos) rows.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  return rows;
}

// Returns the fixture notation of `t`'s shape.
inline std::string ShapeString(const at::Tensor& t) {
  if (t.dim() == 0) return "scalar";
  std::ostringstream os;
  for (int64_t d = 0; d < t.dim(); ++d) os << (d ? "x" : "") << t.size(d);
  return os.str();
}

// Returns the entries of `module` in PyTorch's state_dict() order: per module, in pre-order, its
// parameters, then its buffers.
inline KeyShapes StateDictLayout(const torch::nn::Module& module, const std::string& prefix = "") {
  KeyShapes out;
  for (const auto& p : module.named_parameters(false))
    out.emplace_back(prefix + p.key(), ShapeString(p.value()));
  for (const auto& b : module.named_buffers(false))
    out.emplace_back(prefix + b.key(), ShapeString(b.value()));
  for (const auto& c : module.named_children()) {
    KeyShapes child = StateDictLayout(*c.value(), prefix + c.key() + ".");
    out.insert(out.end(), child.begin(), child.end());
  }
  return out;
}

}  // namespace iis::models::testing_keys
