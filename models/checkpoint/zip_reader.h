// Reads the entries of a zip archive as torch.save writes them: uncompressed ("stored") entries,
// zip64 sizes and offsets for files over 4 GiB, no encryption, one disk.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "models/checkpoint/read_only_file.h"

namespace iis::models::checkpoint {

// One file of a zip archive, as the central directory and the entry's local header describe it.
struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;      // where the entry's bytes start in the archive file
  uint64_t size = 0;             // uncompressed size in bytes
  uint64_t compressed_size = 0;  // size of the bytes stored at data_offset
  uint32_t crc32 = 0;            // CRC-32 of the uncompressed bytes
  uint16_t method = 0;           // compression method: 0 stored, 8 deflate, ...
  uint16_t flags = 0;            // general-purpose bit flags (bit 0: encrypted)
};

// An open zip archive. The constructor parses the whole central directory (zip64 included) and
// every entry's local header, checking each length, offset and count against the file, so a
// truncated or corrupt archive fails there with a CheckpointError (never a crash, and no
// allocation larger than the file). Entry data is read on request straight into the caller's
// memory, in chunks, with its CRC-32 checked.
// Thread-safety: after construction every method may be called from several threads at once.
class ZipReader {
 public:
  // Opens `path` and reads its directory. Throws CheckpointError naming the path and the problem.
  explicit ZipReader(const std::string& path);

  const std::string& path() const { return file_.path(); }

  // The entries in central-directory order.
  const std::vector<ZipEntry>& entries() const { return entries_; }

  // Returns the entry called `name`, or nullptr if there is none.
  const ZipEntry* Find(std::string_view name) const;

  // Copies the bytes of `entry` (one of entries()) into `destination`, which must hold entry.size
  // bytes, and checks their CRC-32. Throws CheckpointError if the entry is compressed or
  // encrypted, the read fails, or the checksum differs.
  void ReadEntry(const ZipEntry& entry, void* destination) const;

  // Returns the bytes of `entry` as a string; same errors as ReadEntry.
  std::string ReadEntryToString(const ZipEntry& entry) const;

#ifdef IIS_CHECKPOINT_ZIP_TORCH
  // TRIAL (zip_reader_torch.cc): the same interface over LibTorch's
  // caffe2::serialize::PyTorchStreamReader. Entries carry name, data_offset and size only (the
  // reader exposes no CRC-32, method or flags), so nothing is checked or refused on read.
  ~ZipReader();

 private:
  struct TorchState;
  ReadOnlyFile file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::unique_ptr<TorchState> torch_;
#else
 private:
  // Where the central directory lies, from the end-of-central-directory records.
  struct Directory {
    uint64_t offset = 0;
    uint64_t size = 0;
    uint64_t entries = 0;
  };

  Directory FindDirectory() const;
  void ParseDirectory(const Directory& directory);
  void ReadLocalHeader(ZipEntry& entry, uint64_t header_offset, uint64_t directory_offset) const;
  // Throws CheckpointError unless `entry` is stored uncompressed and unencrypted.
  void CheckReadable(const ZipEntry& entry) const;

  ReadOnlyFile file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
#endif
};

}  // namespace iis::models::checkpoint
