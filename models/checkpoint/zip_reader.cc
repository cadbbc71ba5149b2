#include "models/checkpoint/zip_reader.h"

#include <algorithm>
#include <cstdio>

#include <c10/util/StringUtil.h>
#include <zlib.h>

#include "models/checkpoint/checkpoint_error.h"

namespace iis::models::checkpoint {
namespace {

// Record signatures and fixed sizes from PKWARE's APPNOTE.TXT (sections 4.3.7, 4.3.12, 4.3.14-16).
constexpr uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr uint32_t kEndOfDirectorySignature = 0x06054b50;
constexpr uint32_t kZip64EndOfDirectorySignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint64_t kLocalHeaderSize = 30;
constexpr uint64_t kCentralHeaderSize = 46;
constexpr uint64_t kEndOfDirectorySize = 22;
constexpr uint64_t kZip64EndOfDirectorySize = 56;
constexpr uint64_t kZip64LocatorSize = 20;
constexpr uint64_t kMaxCommentSize = 0xFFFF;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kFlagEncrypted = 0x0001;
// Entry data is read and checksummed in pieces of this size, so the CRC runs on cache-warm bytes
// (and each piece fits zlib's 32-bit length).
constexpr uint64_t kReadChunk = uint64_t{4} << 20;
static_assert(kReadChunk <= UINT32_MAX, "zlib's crc32() takes a 32-bit length");

uint16_t Load16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

uint32_t Load32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

uint64_t Load64(const unsigned char* p) {
  return static_cast<uint64_t>(Load32(p)) | (static_cast<uint64_t>(Load32(p + 4)) << 32);
}

std::string Hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", value);
  return text;
}

const char* MethodName(uint16_t method) {
  switch (method) {
    case 8:
      return "deflate";
    case 9:
      return "deflate64";
    case 12:
      return "bzip2";
    case 14:
      return "lzma";
    case 93:
      return "zstd";
    default:
      return "unknown method";
  }
}

}  // namespace

ZipReader::ZipReader(const std::string& path) : file_(path) { ParseDirectory(FindDirectory()); }

ZipReader::Directory ZipReader::FindDirectory() const {
  const uint64_t file_size = file_.size();
  if (file_size < kEndOfDirectorySize) {
    throw CheckpointError(c10::str(path(), ": ", file_size,
                                   " bytes is too small for a zip archive (truncated file?)"));
  }
  // The end-of-central-directory record is the last thing in the file, followed only by its
  // comment, so it starts within the last 22 + 65535 bytes.
  const uint64_t tail_size = std::min(file_size, kEndOfDirectorySize + kMaxCommentSize);
  const uint64_t tail_start = file_size - tail_size;
  std::string tail(tail_size, '\0');
  file_.ReadAt(tail_start, tail.data(), tail_size);
  const auto* bytes = reinterpret_cast<const unsigned char*>(tail.data());

  uint64_t record = tail_size;  // position in `tail`; tail_size means "not found"
  for (uint64_t pos = tail_size - kEndOfDirectorySize + 1; pos-- > 0;) {
    if (Load32(bytes + pos) == kEndOfDirectorySignature &&
        pos + kEndOfDirectorySize + Load16(bytes + pos + 20) == tail_size) {
      record = pos;
      break;
    }
  }
  if (record == tail_size) {
    throw CheckpointError(
        c10::str(path(), ": no zip end-of-central-directory record at the end of the file (",
                 "the file is truncated or not a zip archive)"));
  }
  const unsigned char* eocd = bytes + record;
  const uint64_t eocd_offset = tail_start + record;
  if (Load16(eocd + 4) != 0 || Load16(eocd + 6) != 0) {
    throw CheckpointError(c10::str(path(), ": multi-disk zip archives are not supported"));
  }
  Directory directory;
  directory.entries = Load16(eocd + 10);
  directory.size = Load32(eocd + 12);
  directory.offset = Load32(eocd + 16);
  uint64_t directory_end_limit = eocd_offset;

  // A zip64 locator sits right before the classic record when the archive uses zip64 (torch.save
  // always writes one). Its 64-bit values replace the classic ones.
  bool has_locator = false;
  if (eocd_offset >= kZip64LocatorSize) {
    unsigned char locator[kZip64LocatorSize];
    file_.ReadAt(eocd_offset - kZip64LocatorSize, locator, kZip64LocatorSize);
    if (Load32(locator) == kZip64LocatorSignature) {
      has_locator = true;
      const uint64_t record_offset = Load64(locator + 8);
      const uint64_t locator_offset = eocd_offset - kZip64LocatorSize;
      if (record_offset > locator_offset ||
          locator_offset - record_offset < kZip64EndOfDirectorySize) {
        throw CheckpointError(c10::str(path(), ": corrupt zip64 locator: record offset ",
                                       record_offset, " does not leave room before byte ",
                                       locator_offset));
      }
      unsigned char zip64[kZip64EndOfDirectorySize];
      file_.ReadAt(record_offset, zip64, kZip64EndOfDirectorySize);
      if (Load32(zip64) != kZip64EndOfDirectorySignature) {
        throw CheckpointError(c10::str(path(),
                                       ": corrupt zip64 end-of-central-directory record at ",
                                       "byte ", record_offset, " (bad signature)"));
      }
      if (Load32(zip64 + 16) != 0 || Load32(zip64 + 20) != 0) {
        throw CheckpointError(c10::str(path(), ": multi-disk zip archives are not supported"));
      }
      directory.entries = Load64(zip64 + 32);
      directory.size = Load64(zip64 + 40);
      directory.offset = Load64(zip64 + 48);
      directory_end_limit = record_offset;
    }
  }
  if (!has_locator && (directory.entries == 0xFFFF || directory.size == 0xFFFFFFFF ||
                       directory.offset == 0xFFFFFFFF)) {
    throw CheckpointError(c10::str(path(), ": the zip directory needs zip64 values but the zip64 ",
                                   "locator is missing (corrupt or truncated archive)"));
  }
  if (directory.offset > directory_end_limit ||
      directory.size != directory_end_limit - directory.offset) {
    throw CheckpointError(c10::str(path(), ": corrupt zip directory: it claims bytes [",
                                   directory.offset, ", ", directory.offset + directory.size,
                                   ") but must end at byte ", directory_end_limit));
  }
  if (directory.entries > directory.size / kCentralHeaderSize) {
    throw CheckpointError(c10::str(path(), ": corrupt zip directory: ", directory.entries,
                                   " entries cannot fit in ", directory.size, " bytes"));
  }
  return directory;
}

void ZipReader::ParseDirectory(const Directory& directory) {
  std::string buffer(directory.size, '\0');
  file_.ReadAt(directory.offset, buffer.data(), directory.size);
  const auto* bytes = reinterpret_cast<const unsigned char*>(buffer.data());
  const uint64_t size = directory.size;

  entries_.reserve(directory.entries);
  uint64_t pos = 0;
  for (uint64_t i = 0; i < directory.entries; ++i) {
    const auto corrupt = [&](const std::string& what) {
      return CheckpointError(c10::str(path(), ": corrupt zip directory entry ", i, " (at byte ",
                                      directory.offset + pos, "): ", what));
    };
    if (size - pos < kCentralHeaderSize) throw corrupt("the directory ends inside its header");
    const unsigned char* header = bytes + pos;
    if (Load32(header) != kCentralHeaderSignature) throw corrupt("bad signature");
    ZipEntry entry;
    entry.flags = Load16(header + 8);
    entry.method = Load16(header + 10);
    entry.crc32 = Load32(header + 16);
    entry.compressed_size = Load32(header + 20);
    entry.size = Load32(header + 24);
    const uint64_t name_size = Load16(header + 28);
    const uint64_t extra_size = Load16(header + 30);
    const uint64_t comment_size = Load16(header + 32);
    const uint16_t start_disk = Load16(header + 34);
    uint64_t local_offset = Load32(header + 42);
    if (size - pos - kCentralHeaderSize < name_size + extra_size + comment_size) {
      throw corrupt("its name, extra field or comment runs past the end of the directory");
    }
    const unsigned char* name = header + kCentralHeaderSize;
    entry.name.assign(reinterpret_cast<const char*>(name), name_size);
    if (entry.name.empty() || entry.name.find('\0') != std::string::npos) {
      throw corrupt("empty name or a name containing a NUL byte");
    }

    // Zip64 extended information: 8-byte values for exactly the fields that hold 0xFFFFFFFF (and
    // the disk number if it is 0xFFFF), in this order.
    const bool need_size = entry.size == 0xFFFFFFFF;
    const bool need_compressed = entry.compressed_size == 0xFFFFFFFF;
    const bool need_offset = local_offset == 0xFFFFFFFF;
    if (need_size || need_compressed || need_offset || start_disk == 0xFFFF) {
      const unsigned char* extra = name + name_size;
      bool found = false;
      for (uint64_t at = 0; at + 4 <= extra_size;) {
        const uint16_t id = Load16(extra + at);
        const uint64_t field_size = Load16(extra + at + 2);
        if (field_size > extra_size - at - 4) throw corrupt("an extra field runs past its end");
        if (id == kZip64ExtraId) {
          const unsigned char* value = extra + at + 4;
          uint64_t left = field_size;
          const auto next = [&](const char* what) {
            if (left < 8) throw corrupt(c10::str("the zip64 extra field lacks the ", what));
            const uint64_t v = Load64(value);
            value += 8;
            left -= 8;
            return v;
          };
          if (need_size) entry.size = next("uncompressed size");
          if (need_compressed) entry.compressed_size = next("compressed size");
          if (need_offset) local_offset = next("local header offset");
          found = true;
          break;
        }
        at += 4 + field_size;
      }
      if (!found) throw corrupt("it needs zip64 values but has no zip64 extra field");
    }
    if (start_disk != 0 && start_disk != 0xFFFF) throw corrupt("the entry is on another disk");
    if (entry.method == 0 && entry.compressed_size != entry.size) {
      throw corrupt(c10::str("a stored entry with compressed size ", entry.compressed_size,
                             " != size ", entry.size));
    }
    ReadLocalHeader(entry, local_offset, directory.offset);
    if (!index_.emplace(entry.name, entries_.size()).second) {
      throw corrupt(c10::str("a second entry named '", entry.name, "'"));
    }
    entries_.push_back(std::move(entry));
    pos += kCentralHeaderSize + name_size + extra_size + comment_size;
  }
  if (pos != size) {
    throw CheckpointError(c10::str(path(), ": corrupt zip directory: ", directory.entries,
                                   " entries use ", pos, " of its ", size, " bytes"));
  }
}

void ZipReader::ReadLocalHeader(ZipEntry& entry, uint64_t header_offset,
                                uint64_t directory_offset) const {
  const uint64_t name_size = entry.name.size();
  if (header_offset > directory_offset ||
      directory_offset - header_offset < kLocalHeaderSize + name_size) {
    throw CheckpointError(c10::str(path(), ": corrupt zip entry '", entry.name,
                                   "': its local header offset ", header_offset,
                                   " is not before the directory at ", directory_offset));
  }
  std::string header(kLocalHeaderSize + name_size, '\0');
  file_.ReadAt(header_offset, header.data(), header.size());
  const auto* bytes = reinterpret_cast<const unsigned char*>(header.data());
  if (Load32(bytes) != kLocalHeaderSignature || Load16(bytes + 26) != name_size ||
      header.compare(kLocalHeaderSize, name_size, entry.name) != 0) {
    throw CheckpointError(c10::str(path(), ": corrupt zip entry '", entry.name,
                                   "': no matching local header at byte ", header_offset));
  }
  entry.data_offset = header_offset + kLocalHeaderSize + name_size + Load16(bytes + 28);
  if (entry.data_offset > directory_offset ||
      entry.compressed_size > directory_offset - entry.data_offset) {
    throw CheckpointError(c10::str(path(), ": corrupt zip entry '", entry.name, "': its ",
                                   entry.compressed_size, " bytes at ", entry.data_offset,
                                   " run into the directory at byte ", directory_offset));
  }
}

const ZipEntry* ZipReader::Find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

void ZipReader::CheckReadable(const ZipEntry& entry) const {
  if (entry.flags & kFlagEncrypted) {
    throw CheckpointError(
        c10::str(path(), ": zip entry '", entry.name, "' is encrypted, which is not supported"));
  }
  if (entry.method != 0) {
    throw CheckpointError(c10::str(
        path(), ": zip entry '", entry.name, "' is compressed (", MethodName(entry.method),
        ", method ", entry.method, "); torch.save writes uncompressed entries, so another tool ",
        "re-packed this file: re-save it with torch.save or re-zip it without compression "
        "(zip -0)"));
  }
}

void ZipReader::ReadEntry(const ZipEntry& entry, void* destination) const {
  CheckReadable(entry);
  auto* out = static_cast<char*>(destination);
  uLong crc = ::crc32(0L, Z_NULL, 0);
  for (uint64_t done = 0; done < entry.size;) {
    const uint64_t chunk = std::min(kReadChunk, entry.size - done);
    file_.ReadAt(entry.data_offset + done, out + done, chunk);
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(out + done), static_cast<uInt>(chunk));
    done += chunk;
  }
  if (crc != entry.crc32) {
    throw CheckpointError(c10::str(path(), ": zip entry '", entry.name,
                                   "' fails its CRC-32 check (the file is corrupt): stored ",
                                   Hex32(entry.crc32), ", computed ",
                                   Hex32(static_cast<uint32_t>(crc))));
  }
}

std::string ZipReader::ReadEntryToString(const ZipEntry& entry) const {
  CheckReadable(entry);  // before allocating: only a stored entry's size is bounded by the file
  std::string bytes(entry.size, '\0');
  ReadEntry(entry, bytes.data());
  return bytes;
}

}  // namespace iis::models::checkpoint
