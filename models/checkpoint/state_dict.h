// Loading model weights from checkpoint files: the state-dict API of models/checkpoint/.
//
//   iis::models::checkpoint::Checkpoint file =
//   iis::models::checkpoint::LoadCheckpoint("upernet_t.pth"); iis::models::checkpoint::ApplyOptions
//   options; options.ignore_prefixes = {"auxiliary_head."};
//   iis::models::checkpoint::ApplyStateDict(*model, file.weights, options);
//
// Formats: torch.save zip archives (PyTorch >= 1.6, what the official InternImage, mmdetection
// and mmsegmentation checkpoints are), read by a restricted unpickler that never executes
// anything, and .safetensors files. Every error is a CheckpointError (a c10::Error).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

namespace iis::models::checkpoint {

// Named tensors in file order, with lookup by name. Tensors loaded from a file live on the CPU.
// Thread-safety: const methods may be called concurrently; Insert may not.
class StateDict {
 public:
  using Entry = std::pair<std::string, at::Tensor>;

  StateDict() = default;
  // `source` names where the weights came from (a path); error messages start with it.
  explicit StateDict(std::string source) : source_(std::move(source)) {}

  // Appends `tensor` under `name`. Throws CheckpointError if the name is already present.
  void Insert(std::string name, at::Tensor tensor);

  // Returns the tensor called `name`, or nullptr if there is none.
  const at::Tensor* Find(const std::string& name) const;

  const std::vector<Entry>& entries() const { return entries_; }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// Which file format LoadCheckpoint found.
enum class CheckpointFormat { kTorchZip, kSafetensors };

// How LoadCheckpoint picks the weights out of a file.
struct LoadOptions {
  // The top-level entry of a torch.save file that holds the weights, e.g. "model_ema". Empty:
  // 'state_dict' (mmdetection/mmsegmentation), else 'model' (official classification files),
  // else the top-level dict itself when all its values are tensors. Ignored for safetensors.
  std::string state_dict_key;
};

// What LoadCheckpoint read.
struct Checkpoint {
  // The weights, in file order, every leading "module." (DataParallel) removed from the names.
  StateDict weights;
  CheckpointFormat format = CheckpointFormat::kTorchZip;
  // The top-level key the weights came from ("state_dict", "model", ...); empty for the
  // top-level dict and for safetensors.
  std::string weights_key;
  // The class names stored beside the weights, when the file has them as a list or tuple of
  // strings: meta['CLASSES'] (mmdetection/mmsegmentation 2.x) or meta['dataset_meta']['classes']
  // (3.x). Empty otherwise.
  std::vector<std::string> classes;
};

// Reads the weights of the checkpoint at `path`, detecting the format from the content (a zip
// archive, or an 8-byte header length followed by a JSON header). Only the chosen tensors are
// read; optimizer state and EMA copies beside them stay on disk. Throws CheckpointError if the
// file cannot be read, is of another format (e.g. legacy pre-1.6 torch.save, TorchScript), is
// corrupt, asks the unpickler for a global outside its allowlist, has no weights where
// LoadOptions says, or holds a non-tensor value or a non-string key among them.
// Thread-safe: calls share nothing.
Checkpoint LoadCheckpoint(const std::string& path, const LoadOptions& options = {});

// Returns LoadCheckpoint(path).weights.
StateDict LoadStateDict(const std::string& path);

// How ApplyStateDict maps checkpoint names onto the model's names. Each checkpoint name goes
// through select_prefix, then rename, then ignore_prefixes.
struct ApplyOptions {
  // Only checkpoint entries whose name starts with this prefix are used, with the prefix removed
  // (e.g. "backbone." to load a detector's backbone into a standalone backbone); the others are
  // skipped. Empty: every entry, names unchanged.
  std::string select_prefix;
  // Maps a checkpoint name (after select_prefix) to the model's name for it; returning an empty
  // string skips the entry. Unset: names are used as they are.
  std::function<std::string(const std::string&)> rename;
  // Names starting with one of these are left out on both sides: such checkpoint entries are
  // skipped and such model tensors keep their values, e.g. {"auxiliary_head."} for UperNet files
  // or {"head."} to load a classification file into a backbone.
  std::vector<std::string> ignore_prefixes;
  // true: model tensors without a checkpoint entry ("missing") and checkpoint entries without a
  // model tensor ("unexpected") are errors. false: they are only listed in the ApplyReport.
  // A shape or dtype-kind mismatch is an error either way.
  bool strict = true;
  // How many names each list of an error message shows before "... and N more" (>= 1).
  int max_listed_names = 10;
};

// What ApplyStateDict did.
struct ApplyReport {
  int64_t loaded = 0;                   // model tensors overwritten
  int64_t skipped = 0;                  // checkpoint entries left out by the options
  std::vector<std::string> missing;     // model tensors left unchanged (non-strict mode)
  std::vector<std::string> unexpected;  // checkpoint names without a model tensor (non-strict)
};

// Copies `weights` into `targets` (name -> tensor to overwrite in place, on any device) by name,
// converting dtypes within a kind (floating point: an fp16 or bf16 file into an fp32 model;
// integer: widths); a value of another kind (floating point, integer, bool) is a mismatch. Checks
// everything before copying anything, and throws one CheckpointError listing every missing,
// unexpected and mismatched name (each list capped at options.max_listed_names, with counts;
// the message starts with weights.source()), so a failed call leaves the targets unchanged. Also
// throws if `targets` repeats a name, two checkpoint entries map to the same target, or
// options.max_listed_names < 1. Runs under torch::NoGradGuard. Not thread-safe with respect to the
// targets.
ApplyReport ApplyStateDict(const std::vector<std::pair<std::string, at::Tensor>>& targets,
                           const StateDict& weights, const ApplyOptions& options = {});

// Applies `weights` to the parameters and buffers of `module` and its submodules, named and
// ordered as PyTorch's state_dict() (e.g. "levels.0.blocks.1.mlp.fc1.weight"), as the overload
// above does. Undefined buffers are not targets.
ApplyReport ApplyStateDict(torch::nn::Module& module, const StateDict& weights,
                           const ApplyOptions& options = {});

}  // namespace iis::models::checkpoint
