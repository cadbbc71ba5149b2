// TRIAL: ZipReader over LibTorch's caffe2::serialize::PyTorchStreamReader, built only into
// iis_checkpoint_torchzip / checkpoint_test_torchzip / checkpoint_bench_torchzip to compare it
// with the hand-written zip_reader.cc on the same tests and benchmark.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <tuple>
#include <utility>

#include <c10/core/Allocator.h>
#include <c10/util/StringUtil.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/version.h>

#include "models/checkpoint/checkpoint_error.h"
#include "models/checkpoint/zip_reader.h"

namespace iis::models::checkpoint {

struct ZipReader::TorchState {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  std::string prefix;  // "<archive>/": PyTorchStreamReader names records without it
#if TORCH_VERSION_MAJOR < 2
  // LibTorch 1.13 has no way to learn a record's size but reading it (getRecord allocates and
  // reads the whole record), so the constructor reads every record and keeps the buffers here
  // until ReadEntry copies them out.
  std::mutex mutex;
  std::unordered_map<std::string, std::tuple<at::DataPtr, size_t>> unread;
#endif
};

namespace {

// Runs `f`, turning LibTorch's c10::Error into a CheckpointError naming `path`.
template <typename F>
auto Translate(const std::string& path, F&& f) {
  try {
    return f();
  } catch (const CheckpointError&) {
    throw;
  } catch (const c10::Error& error) {
    throw CheckpointError(c10::str(path, ": ", error.what_without_backtrace()));
  }
}

// Returns "<archive>/", the folder of `record` (whose data starts at `data_offset`), from its
// local header. PyTorchStreamReader knows this folder but has no accessor for it (1.13 nor 2.x),
// and the rest of the reader uses full names.
std::string ArchiveFolder(const ReadOnlyFile& file, uint64_t data_offset,
                          const std::string& record) {
  const uint64_t window = std::min<uint64_t>(data_offset, 30 + 2 * 65535);
  std::string bytes(window, '\0');
  file.ReadAt(data_offset - window, bytes.data(), window);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (uint64_t pos = window >= 30 ? window - 30 + 1 : 0; pos-- > 0;) {
    if (bytes.compare(pos, 4, "PK\x03\x04") != 0) continue;
    const uint64_t name_size = p[pos + 26] | (p[pos + 27] << 8);
    const uint64_t extra_size = p[pos + 28] | (p[pos + 29] << 8);
    if (pos + 30 + name_size + extra_size != window || name_size <= record.size()) continue;
    const std::string name = bytes.substr(pos + 30, name_size);
    if (name.compare(name_size - record.size(), record.size(), record) == 0) {
      return name.substr(0, name_size - record.size());
    }
  }
  throw CheckpointError(file.path() + ": no local header for '" + record + "'");
}

}  // namespace

ZipReader::ZipReader(const std::string& path)
    : file_(path), torch_(std::make_unique<TorchState>()) {
  Translate(path, [&] {
    torch_->reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    const std::vector<std::string> records = torch_->reader->getAllRecords();
    if (!records.empty()) {
      const uint64_t first_data = torch_->reader->getRecordOffset(records[0]);
      torch_->prefix = ArchiveFolder(file_, first_data, records[0]);
    }
    for (const std::string& record : records) {
      ZipEntry entry;
      entry.name = torch_->prefix + record;
      entry.data_offset = torch_->reader->getRecordOffset(record);
#if TORCH_VERSION_MAJOR >= 2
      entry.size = torch_->reader->getRecordSize(record);
#else
      auto data = torch_->reader->getRecord(record);
      entry.size = std::get<1>(data);
      torch_->unread.emplace(record, std::move(data));
#endif
      entry.compressed_size = entry.size;
      if (!index_.emplace(entry.name, entries_.size()).second) {
        throw CheckpointError(c10::str(path, ": a second entry named '", entry.name, "'"));
      }
      entries_.push_back(std::move(entry));
    }
    return 0;
  });
}

ZipReader::~ZipReader() = default;

const ZipEntry* ZipReader::Find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

void ZipReader::ReadEntry(const ZipEntry& entry, void* destination) const {
  const std::string record = entry.name.substr(torch_->prefix.size());
  Translate(path(), [&] {
#if TORCH_VERSION_MAJOR >= 2
    torch_->reader->getRecord(record, destination, entry.size);
#else
    std::tuple<at::DataPtr, size_t> data;
    {
      std::lock_guard<std::mutex> lock(torch_->mutex);
      const auto it = torch_->unread.find(record);
      if (it != torch_->unread.end()) {
        data = std::move(it->second);
        torch_->unread.erase(it);
      }
    }
    if (std::get<0>(data).get() == nullptr && entry.size > 0) {
      data = torch_->reader->getRecord(record);  // read a second time
    }
    if (std::get<1>(data) != entry.size) {
      throw CheckpointError(c10::str(path(), ": record '", entry.name, "' changed size"));
    }
    if (entry.size > 0) std::memcpy(destination, std::get<0>(data).get(), entry.size);
#endif
    return 0;
  });
}

std::string ZipReader::ReadEntryToString(const ZipEntry& entry) const {
  std::string bytes(entry.size, '\0');
  ReadEntry(entry, bytes.data());
  return bytes;
}

}  // namespace iis::models::checkpoint
