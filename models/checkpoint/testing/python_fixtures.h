// Test helper: the checkpoint files written by models/checkpoint/testdata/make_fixtures.py.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace iis::models::checkpoint::fixtures {

// Returns the folder holding the fixture files, generating them on first use by running the
// fixture script with the Python configured at build time (IIS_CHECKPOINT_TEST_PYTHON). The
// files are cached in the build tree under a hash of the script, so the many test processes
// CTest starts share one generation; a file lock serialises concurrent first uses. Returns an
// empty string and sets `*skip_reason` when that Python cannot import torch; calls ADD_FAILURE
// (and returns empty) when the script fails otherwise.
std::string FixtureDir(std::string* skip_reason);

// A test fixture whose SetUp finds the fixture folder or skips the test with the reason.
class PythonFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // The path of fixture file `name`.
  std::string Fixture(const std::string& name) const { return dir_ + "/" + name; }

  // A fresh empty scratch folder for this test, removed in TearDown.
  const std::string& ScratchDir();

  void TearDown() override;

 private:
  std::string dir_;
  std::string scratch_;
};

// Writes `bytes` to a new file at `path`, replacing any file there.
void WriteFileBytes(const std::string& path, const std::string& bytes);

// One line of a NAME.expected file (see make_fixtures.py).
struct ExpectedTensor {
  std::string name;
  std::string dtype;  // torch's name without "torch.": "float32", "bfloat16", "bool", ...
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
  int64_t storage_offset = 0;
  std::string bytes;  // contiguous little-endian values
};

// Reads NAME.expected and NAME.expected.bin for fixture `path`.
std::vector<ExpectedTensor> ReadExpected(const std::string& path);

}  // namespace iis::models::checkpoint::fixtures
