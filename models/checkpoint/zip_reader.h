// Reads the entries of a zip archive as torch.save writes them: uncompressed ("stored") entries,
// zip64 sizes and offsets for files over 4 GiB, no encryption, one disk.
//
// Why our own reader and not LibTorch's caffe2::serialize::PyTorchStreamReader (tried behind this
// same interface in commit b326cdc, zip_reader_torch.cc; whole checkpoint suite and
// checkpoint_bench run against both, on LibTorch 1.13 (Debian) and 2.11 (PyPI wheel)):
// - It never checks CRC-32s: PyTorch builds miniz with MINIZ_DISABLE_ZIP_READER_CRC32_CHECKS and
//   exposes no stored CRC to check ourselves. A flipped bit in a weight loads silently
//   (ZipReaderTest.ChecksumMismatchIsReported and StateDictTest.ReadsOnlyTheSelectedTensors
//   fail); of the fuzzer's 1,500 mutated archives 232 load with it against 128 with ours (1.13).
// - It inflates deflated entries and exposes no method, so a re-zipped file is not refused with
//   a hint, and a 1 MiB file whose data.pkl inflates to 1 GiB costs 1 GiB of memory and 5-8 s
//   (1.13: 2.25 GB peak RSS; ours refuses it at once: "is compressed (deflate, method 8)").
// - LibTorch 1.13 has no getRecordSize nor in-place getRecord (2.x added both): a record's size
//   is known only by reading all of it into a buffer of LibTorch's, then copied. Every record is
//   read, including optimizer state LoadStateDict never uses: peak RSS 426 MB against 230 MB
//   for a 192 MiB .pth (64 MiB weights + 128 MiB AdamW state), 677 MB against 431 MB for a
//   256 MiB one; an unused 1 GiB deflated record in a 1 MiB file costs 1.2 GB and 4.8 s.
// - Errors are miniz's, without offsets or what is wrong ("failed finding central directory",
//   "invalid header or archive is corrupted"): NotAZipFile and all 7 cases of
//   CorruptDirectoriesAreErrors fail (one corrupt archive even loads), and on 1.13 every cut of
//   TruncatedFilesAreErrorsWhereverTheyAreCut ("not a ZIP archive" names no truncation). It has
//   no accessor for the archive's folder name either (records are named without it).
// - It is not faster: CPU per load of the 256 MiB .pth 165-169 ms against 98-106 ms with ours
//   (1.13); on 2.11, where it reads in place and skips the CRC, 225-240 ms against 177-182 ms,
//   and 19-23 ms against 40-46 ms for the 192 MiB one (our CRC-32 of the 64 MiB it loads).
// Tests: 35 of 43 (1.13) and 36 of 43 (2.11) pass with it, 43 of 43 with ours; both pass the
// fuzz tests (only CheckpointError, no crash, peak memory bounded). Figures: 2 loaded cores,
// checkpoint_bench --pth=FILE --benchmark_repetitions=5, medians; peak RSS by /usr/bin/time.
#pragma once

#include <cstdint>
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
};

}  // namespace iis::models::checkpoint
