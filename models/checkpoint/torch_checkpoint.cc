#include "models/checkpoint/torch_checkpoint.h"

#include <cstring>

#include <ATen/ATen.h>
#include <c10/util/StringUtil.h>

#include "models/checkpoint/checkpoint_error.h"
#include "models/checkpoint/tensor_bytes.h"

namespace iis::models::checkpoint {
namespace {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor bytes are copied as stored (little endian); a big-endian host would need swaps"
#endif

// TorchScript archives (torch.jit.save) have constants.pkl and code/ beside data.pkl.
bool IsTorchScript(const ZipReader& zip) {
  for (const ZipEntry& entry : zip.entries()) {
    const std::string& name = entry.name;
    const std::string_view constants = "/constants.pkl";
    if (name.find("/code/") != std::string::npos ||
        (name.size() > constants.size() &&
         name.compare(name.size() - constants.size(), constants.size(), constants) == 0)) {
      return true;
    }
  }
  return false;
}

// Returns "<archive>/", the folder of every record. It is named after the file torch.save first
// wrote, so it is found through the one <archive>/data.pkl record.
std::string FindPrefix(const ZipReader& zip) {
  if (IsTorchScript(zip)) {
    throw CheckpointError(c10::str(zip.path(), ": this is a TorchScript archive (torch.jit.save), ",
                                   "not a torch.save checkpoint; save model.state_dict() with ",
                                   "torch.save instead"));
  }
  const ZipEntry* pickle = nullptr;
  for (const ZipEntry& entry : zip.entries()) {
    const size_t slash = entry.name.find('/');
    if (slash == std::string::npos || entry.name.compare(slash, std::string::npos, "/data.pkl")) {
      continue;
    }
    if (pickle != nullptr) {
      throw CheckpointError(c10::str(zip.path(), ": two data.pkl records ('", pickle->name,
                                     "' and '", entry.name, "'); not a torch.save archive"));
    }
    pickle = &entry;
  }
  if (pickle == nullptr) {
    throw CheckpointError(c10::str(zip.path(), ": a zip archive without <archive>/data.pkl, so ",
                                   "not a torch.save checkpoint"));
  }
  return pickle->name.substr(0, pickle->name.size() - std::strlen("data.pkl"));
}

// Checks the byte order torch >= 2.1 records (older versions wrote little endian only) and
// returns the bytes of data.pkl.
std::string ReadPickle(const ZipReader& zip, const std::string& prefix) {
  if (const ZipEntry* byteorder = zip.Find(prefix + "byteorder")) {
    if (byteorder->size > 16) {
      throw CheckpointError(c10::str(zip.path(), ": corrupt byteorder record"));
    }
    const std::string order = zip.ReadEntryToString(*byteorder);
    if (order != "little") {
      throw CheckpointError(c10::str(zip.path(), ": tensors are stored with byte order '", order,
                                     "'; only little endian is supported (re-save the file on a "
                                     "little-endian machine)"));
    }
  }
  return zip.ReadEntryToString(*zip.Find(prefix + "data.pkl"));
}

}  // namespace

TorchArchive::TorchArchive(const std::string& path)
    : zip_(path), prefix_(FindPrefix(zip_)), pickle_(Unpickle(ReadPickle(zip_, prefix_), path)) {}

at::Tensor TorchArchive::ReadStorage(const StorageRef& storage) const {
  const std::string name = prefix_ + "data/" + storage.key;
  const ZipEntry* entry = zip_.Find(name);
  if (entry == nullptr) {
    throw CheckpointError(
        c10::str(path(), ": the archive has no record '", name, "' for a tensor's storage"));
  }
  if (entry->size != static_cast<uint64_t>(storage.nbytes())) {
    throw CheckpointError(c10::str(path(), ": record '", name, "' has ", entry->size,
                                   " bytes but its storage needs ", storage.numel, " ",
                                   c10::toString(storage.dtype), " elements (", storage.nbytes(),
                                   " bytes)"));
  }
  at::Tensor bytes = at::empty({storage.nbytes()}, at::TensorOptions().dtype(at::kByte));
  zip_.ReadEntry(*entry, bytes.data_ptr());
  if (storage.dtype == at::kBool) {
    CheckBoolBytes(bytes.data_ptr(), entry->size, c10::str(path(), ": bool storage '", name, "'"));
  }
  return bytes;
}

at::Tensor TorchArchive::LoadTensor(const TensorRef& tensor) {
  auto it = storages_.find(tensor.storage->key);
  if (it == storages_.end()) {
    it = storages_.emplace(tensor.storage->key, ReadStorage(*tensor.storage)).first;
  }
  // The pickle reader checked that the view lies inside the storage.
  return at::empty({0}, at::TensorOptions().dtype(tensor.dtype))
      .set_(it->second.storage(), tensor.storage_offset, tensor.sizes, tensor.strides);
}

}  // namespace iis::models::checkpoint
