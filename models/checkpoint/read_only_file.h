// A file opened for positional reads, shared by the zip and safetensors readers.
#pragma once

#include <cstdint>
#include <string>

namespace iis::models::checkpoint {

// An open regular file read with pread(2), so reads need no shared file position.
// Thread-safety: after construction every method may be called from several threads at once.
class ReadOnlyFile {
 public:
  // Opens `path`. Throws CheckpointError naming the path and the reason if it cannot be opened or
  // is not a regular file.
  explicit ReadOnlyFile(const std::string& path);
  ~ReadOnlyFile();

  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;

  const std::string& path() const { return path_; }

  // The file's size in bytes when it was opened.
  uint64_t size() const { return size_; }

  // Reads exactly `length` bytes starting at `offset` into `destination` (which must hold
  // `length` bytes). Throws CheckpointError if the range is not inside the file or a read fails.
  void ReadAt(uint64_t offset, void* destination, uint64_t length) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace iis::models::checkpoint
