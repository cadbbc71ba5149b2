#include "models/checkpoint/read_only_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <c10/util/StringUtil.h>

#include "models/checkpoint/checkpoint_error.h"

namespace iis::models::checkpoint {
namespace {

// Linux transfers at most about 2 GiB per read call; stay well below.
constexpr uint64_t kMaxReadChunk = uint64_t{1} << 30;

}  // namespace

ReadOnlyFile::ReadOnlyFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    throw CheckpointError(c10::str(path, ": cannot open: ", std::strerror(errno)));
  }
  struct stat info {};
  if (::fstat(fd_, &info) != 0) {
    const int error = errno;
    ::close(fd_);
    throw CheckpointError(c10::str(path, ": cannot stat: ", std::strerror(error)));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd_);
    throw CheckpointError(c10::str(path, ": not a regular file"));
  }
  size_ = static_cast<uint64_t>(info.st_size);
}

ReadOnlyFile::~ReadOnlyFile() { ::close(fd_); }

void ReadOnlyFile::ReadAt(uint64_t offset, void* destination, uint64_t length) const {
  if (offset > size_ || length > size_ - offset) {
    throw CheckpointError(c10::str(path_, ": the file is truncated: needed bytes [", offset, ", ",
                                   offset + length, ") but it has ", size_, " bytes"));
  }
  auto* out = static_cast<char*>(destination);
  while (length > 0) {
    const size_t chunk = static_cast<size_t>(std::min(length, kMaxReadChunk));
    const ssize_t got = ::pread(fd_, out, chunk, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw CheckpointError(
          c10::str(path_, ": read failed at byte ", offset, ": ", std::strerror(errno)));
    }
    if (got == 0) {
      throw CheckpointError(c10::str(path_, ": the file ended at byte ", offset,
                                     " while being read (was it truncated meanwhile?)"));
    }
    out += got;
    offset += static_cast<uint64_t>(got);
    length -= static_cast<uint64_t>(got);
  }
}

}  // namespace iis::models::checkpoint
