// Opens a checkpoint written by torch.save (the zip format of PyTorch >= 1.6) without Python.
#pragma once

#include <string>
#include <unordered_map>

#include <ATen/core/Tensor.h>

#include "models/checkpoint/pickle_reader.h"
#include "models/checkpoint/zip_reader.h"

namespace iis::models::checkpoint {

// A torch.save archive: <archive>/data.pkl parsed by the restricted unpickler (nothing is
// executed), tensor bytes read only when LoadTensor asks for them, each storage once.
// Thread-safety: not thread-safe (LoadTensor caches storages); use one instance per thread.
class TorchArchive {
 public:
  // Opens `path` and parses its pickle. Throws CheckpointError for anything but a torch.save zip
  // archive (a TorchScript archive, a file without data.pkl, big-endian data) and for every
  // error of ZipReader and Unpickle.
  explicit TorchArchive(const std::string& path);

  const std::string& path() const { return zip_.path(); }

  // The object that was saved (usually a dict).
  const PickleValue& root() const { return pickle_.root(); }

  // Returns a CPU tensor with the dtype, sizes, strides and storage offset `tensor` describes.
  // Views of one storage share its memory; the storage is read from the archive the first time a
  // view of it is loaded, straight into the tensor's memory. Throws CheckpointError if the
  // storage's entry is missing, has the wrong size, fails its CRC-32, or a bool storage holds a
  // byte other than 0 and 1.
  at::Tensor LoadTensor(const TensorRef& tensor);

 private:
  // Reads the bytes of `storage` into a new uint8 tensor.
  at::Tensor ReadStorage(const StorageRef& storage) const;

  ZipReader zip_;
  std::string prefix_;  // "<archive>/", the folder every record is in
  Unpickled pickle_;
  std::unordered_map<std::string, at::Tensor> storages_;  // key -> uint8 tensor of its bytes
};

}  // namespace iis::models::checkpoint
