#include "models/checkpoint/testing/python_fixtures.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/testing/paths.h"

namespace iis::models::checkpoint::fixtures {
namespace {

namespace fs = std::filesystem;

constexpr int kSkipExitCode = 77;  // make_fixtures.py: torch or numpy cannot be imported

std::string Hash(const std::string& text) {
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a
  for (const unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ull;
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

std::vector<int64_t> ParseInts(const std::string& text) {
  std::vector<int64_t> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (!item.empty()) values.push_back(std::stoll(item));
  }
  return values;
}

// Holds an exclusive flock on `path` while alive.
class FileLock {
 public:
  explicit FileLock(const std::string& path) : fd_(::open(path.c_str(), O_CREAT | O_RDWR, 0644)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

std::string Generate(std::string* skip_reason) {
  const std::string script = IIS_CHECKPOINT_FIXTURE_SCRIPT;
  const std::string python = IIS_CHECKPOINT_TEST_PYTHON;
  const fs::path cache = IIS_CHECKPOINT_FIXTURE_CACHE;
  const fs::path dir = cache / Hash(testing_paths::ReadFileBytes(script));
  std::error_code error;
  fs::create_directories(cache, error);
  FileLock lock((cache / "lock").string());
  if (fs::exists(dir / "complete")) return dir.string();

  const fs::path partial = cache / (dir.filename().string() + ".partial");
  fs::remove_all(partial, error);
  const std::string log = (cache / "make_fixtures.log").string();
  const std::string command =
      "'" + python + "' '" + script + "' '" + partial.string() + "' >'" + log + "' 2>&1";
  const int status = std::system(command.c_str());
  const int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (exit_code == kSkipExitCode || (exit_code == 127 && !fs::exists(python))) {
    *skip_reason = "checkpoint fixtures need " + python +
                   " with torch and numpy: " + testing_paths::ReadFileBytes(log);
    return "";
  }
  if (exit_code != 0) {
    ADD_FAILURE() << command << " failed with status " << status << ":\n"
                  << testing_paths::ReadFileBytes(log);
    return "";
  }
  WriteFileBytes((partial / "complete").string(), "");
  fs::remove_all(dir, error);
  fs::rename(partial, dir);
  return dir.string();
}

}  // namespace

std::string FixtureDir(std::string* skip_reason) {
  static std::string reason;
  static const std::string dir = Generate(&reason);
  *skip_reason = reason;
  return dir;
}

void PythonFixtureTest::SetUp() {
  std::string skip_reason;
  dir_ = FixtureDir(&skip_reason);
  if (!skip_reason.empty()) GTEST_SKIP() << skip_reason;
  ASSERT_FALSE(dir_.empty()) << "the checkpoint fixtures could not be generated";
}

const std::string& PythonFixtureTest::ScratchDir() {
  if (scratch_.empty()) {
    std::string pattern = (fs::temp_directory_path() / "iis_checkpoint_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    scratch_ = pattern;
  }
  return scratch_;
}

void PythonFixtureTest::TearDown() {
  if (!scratch_.empty()) {
    std::error_code error;
    fs::remove_all(scratch_, error);
  }
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  // A new file rather than a truncated one: ext4 flushes truncated-and-rewritten files to disk
  // on close, which would make the robustness tests wait on the disk thousands of times.
  std::error_code error;
  fs::remove(path, error);
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

std::vector<ExpectedTensor> ReadExpected(const std::string& path) {
  const std::string blob = testing_paths::ReadFileBytes(path + ".expected.bin");
  std::istringstream lines(testing_paths::ReadFileBytes(path + ".expected"));
  std::vector<ExpectedTensor> tensors;
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    std::stringstream stream(line);
    std::string field;
    while (std::getline(stream, field, '\t')) fields.push_back(field);
    if (fields.size() != 7) {
      ADD_FAILURE() << "bad line in " << path << ".expected: " << line;
      continue;
    }
    ExpectedTensor tensor;
    tensor.name = fields[0];
    tensor.dtype = fields[1];
    tensor.sizes = ParseInts(fields[2]);
    tensor.strides = ParseInts(fields[3]);
    tensor.storage_offset = std::stoll(fields[4]);
    tensor.bytes = blob.substr(std::stoull(fields[5]), std::stoull(fields[6]));
    tensors.push_back(std::move(tensor));
  }
  return tensors;
}

}  // namespace iis::models::checkpoint::fixtures
