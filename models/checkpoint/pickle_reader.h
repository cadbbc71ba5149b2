// A restricted unpickler for the pickles torch.save writes (data.pkl of a checkpoint archive).
//
// It interprets pickle protocols 2 to 5 as data only: nothing is imported, called or executed.
// Globals resolve against a fixed allowlist (the tensor and storage rebuild functions, OrderedDict
// and a few inert metadata types such as numpy scalars, argparse.Namespace and yacs CfgNode); any
// other global fails the load with a message naming it. Tensors come out as TensorRef values that
// describe a view of a storage kept elsewhere (the zip entry <archive>/data/<key>); reading the
// bytes is TorchArchive's job (models/checkpoint/torch_checkpoint.h), so the tensors of an
// optimizer state that nobody asked for are never read.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <c10/core/ScalarType.h>

namespace iis::models::checkpoint {

// A storage of a torch.save archive: the persistent id ('storage', <type>, key, location, numel).
struct StorageRef {
  // Size of the storage in bytes (numel * element size of dtype).
  int64_t nbytes() const;

  std::string key;  // the bytes are the zip entry <archive>/data/<key>
  c10::ScalarType dtype = c10::ScalarType::Byte;  // Byte for untyped storages
  int64_t numel = 0;                              // number of dtype elements
  std::string location;  // device the tensor was saved from ("cpu", "cuda:0"); informational
};

// A tensor of a torch.save archive: a strided view of a storage, checked to lie inside it.
struct TensorRef {
  std::shared_ptr<const StorageRef> storage;
  c10::ScalarType dtype = c10::ScalarType::Float;  // element type of the tensor
  int64_t storage_offset = 0;                      // in elements of dtype
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;  // in elements of dtype, all >= 0
};

struct GlobalInfo;  // what an allowlisted global is (defined in pickle_reader.cc)

// A value built by the unpickler. Values point at each other as Python objects do (the memo
// lets one object appear in several places); all of them belong to one Unpickled. Which members
// are meaningful depends on `kind`.
struct PickleValue {
  enum class Kind {
    kNone,
    kBool,     // boolean
    kInt,      // integer (Python ints beyond 64 bits become kObject "builtins.int")
    kFloat,    // real
    kString,   // text, UTF-8
    kBytes,    // text, raw bytes
    kTuple,    // items
    kList,     // items
    kDict,     // entries, in insertion order (also OrderedDict)
    kGlobal,   // text = "module.name" of an allowlisted global, global = what it is
    kObject,   // inert placeholder of an allowlisted metadata class: text = class, args =
               // constructor arguments, state = BUILD state, items/entries = added items
    kStorage,  // storage
    kTensor,   // tensor
  };

  explicit PickleValue(Kind k) : kind(k) {}

  // Returns the value stored under the string key `key` of a dict or of a dict-like placeholder
  // (a dict subclass such as yacs's CfgNode keeps its items in `entries`), or nullptr if there is
  // none. Linear in the number of entries.
  const PickleValue* Find(std::string_view key) const;

  // Returns a short description for error messages: "int", "str", "dict",
  // "'numpy.core.multiarray.scalar' object", ...
  std::string Describe() const;

  Kind kind;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;
  std::vector<const PickleValue*> items;
  std::vector<std::pair<const PickleValue*, const PickleValue*>> entries;
  const PickleValue* args = nullptr;
  const PickleValue* state = nullptr;
  const GlobalInfo* global = nullptr;
  std::shared_ptr<const StorageRef> storage;
  std::shared_ptr<const TensorRef> tensor;
};

// The object a pickle describes, together with every value built on the way (they point at each
// other, possibly in cycles, and are released together). Movable; addresses stay valid.
class Unpickled {
 public:
  Unpickled(std::deque<PickleValue> values, const PickleValue* root)
      : values_(std::move(values)), root_(root) {}

  const PickleValue& root() const { return *root_; }

 private:
  std::deque<PickleValue> values_;
  const PickleValue* root_;
};

// Interprets the pickle `data` and returns the object it describes. `source` starts every error
// message (normally the checkpoint's path). Throws CheckpointError for a global outside the
// allowlist ("<source>: pickle asks for global 'os.system', which a weights file has no reason
// to use; refusing to load"), an unsupported opcode, a truncated or malformed stream, and tensor
// or storage descriptions that are inconsistent (unknown dtype, negative sizes or strides, a view
// reaching outside its storage, one storage key described with two dtypes or sizes). At most one
// value is built per byte of `data`. Thread-safe (pure function).
Unpickled Unpickle(std::string_view data, const std::string& source);

}  // namespace iis::models::checkpoint
