#include "models/checkpoint/state_dict.h"

#include <algorithm>
#include <cstdio>
#include <string_view>

#include <ATen/ATen.h>
#include <c10/util/StringUtil.h>
#include <torch/utils.h>

#include "models/checkpoint/checkpoint_error.h"
#include "models/checkpoint/read_only_file.h"
#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/torch_checkpoint.h"

namespace iis::models::checkpoint {
namespace {

using Kind = PickleValue::Kind;

constexpr std::string_view kDataParallelPrefix = "module.";
constexpr size_t kListedKeys = 10;

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Names the first kListedKeys string keys of a dict, for error messages.
std::string ListKeys(const PickleValue& dict) {
  std::string keys;
  size_t listed = 0;
  for (const auto& entry : dict.entries) {
    if (listed == kListedKeys) {
      keys += c10::str(", ... (", dict.entries.size(), " in all)");
      break;
    }
    keys += listed++ ? ", " : "";
    keys += entry.first->kind == Kind::kString ? "'" + entry.first->text + "'"
                                               : entry.first->Describe();
  }
  return keys.empty() ? "none" : keys;
}

CheckpointFormat DetectFormat(const std::string& path) {
  ReadOnlyFile file(path);
  unsigned char head[9] = {};
  const uint64_t size = std::min<uint64_t>(file.size(), sizeof(head));
  file.ReadAt(0, head, size);
  if (size >= 4 && head[0] == 'P' && head[1] == 'K' &&
      ((head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6))) {
    return CheckpointFormat::kTorchZip;
  }
  if (size == sizeof(head) && head[8] == '{') return CheckpointFormat::kSafetensors;
  if (size >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) {
    throw CheckpointError(
        c10::str(path,
                 ": this is a legacy torch.save file (PyTorch < 1.6 or "
                 "_use_new_zipfile_serialization=False), which this reader does not read; re-save "
                 "it in Python with torch.save(torch.load(old_path), new_path)"));
  }
  std::string shown;
  for (uint64_t i = 0; i < size; ++i) {
    char hex[4];
    std::snprintf(hex, sizeof(hex), " %02x", head[i]);
    shown += hex;
  }
  throw CheckpointError(c10::str(path, ": not a checkpoint: expected a torch.save zip archive ",
                                 "(starting with \"PK\") or a .safetensors file (an 8-byte ",
                                 "length, then '{'), but the file starts with",
                                 size ? shown : std::string(" nothing (it is empty)")));
}

std::vector<std::string> StringList(const PickleValue* value) {
  std::vector<std::string> strings;
  if (value == nullptr || (value->kind != Kind::kTuple && value->kind != Kind::kList)) {
    return strings;
  }
  for (const PickleValue* item : value->items) {
    if (item->kind != Kind::kString) return {};
    strings.push_back(item->text);
  }
  return strings;
}

std::vector<std::string> ReadClasses(const PickleValue& root) {
  const PickleValue* meta = root.Find("meta");
  if (meta == nullptr) return {};
  std::vector<std::string> classes = StringList(meta->Find("CLASSES"));
  if (classes.empty()) {
    if (const PickleValue* dataset_meta = meta->Find("dataset_meta")) {
      classes = StringList(dataset_meta->Find("classes"));
    }
  }
  return classes;
}

// Finds the dict of tensors in a torch.save file, as LoadOptions describes.
const PickleValue& SelectWeights(const std::string& path, const PickleValue& root,
                                 const LoadOptions& options, std::string* weights_key) {
  if (root.kind != Kind::kDict) {
    throw CheckpointError(
        c10::str(path, ": the checkpoint holds a ", root.Describe(), ", expected a dict"));
  }
  const PickleValue* weights = nullptr;
  if (!options.state_dict_key.empty()) {
    weights = root.Find(options.state_dict_key);
    if (weights == nullptr) {
      throw CheckpointError(c10::str(path, ": no top-level entry '", options.state_dict_key,
                                     "' (the entries are ", ListKeys(root), ")"));
    }
    *weights_key = options.state_dict_key;
  } else if ((weights = root.Find("state_dict")) != nullptr) {
    *weights_key = "state_dict";
  } else if ((weights = root.Find("model")) != nullptr) {
    *weights_key = "model";
  } else {
    const bool all_tensors =
        !root.entries.empty() &&
        std::all_of(root.entries.begin(), root.entries.end(),
                    [](const auto& entry) { return entry.second->kind == Kind::kTensor; });
    if (!all_tensors) {
      throw CheckpointError(c10::str(
          path,
          ": found no weights: no 'state_dict' or 'model' entry, and the top-level "
          "entries (",
          ListKeys(root), ") are not all tensors; name the entry in LoadOptions::state_dict_key"));
    }
    weights = &root;
  }
  if (weights->kind != Kind::kDict) {
    throw CheckpointError(c10::str(path, ": entry '", *weights_key, "' is a ", weights->Describe(),
                                   ", expected a dict of tensors"));
  }
  return *weights;
}

Checkpoint LoadTorchZip(const std::string& path, const LoadOptions& options) {
  TorchArchive archive(path);
  Checkpoint checkpoint;
  checkpoint.format = CheckpointFormat::kTorchZip;
  const PickleValue& weights =
      SelectWeights(path, archive.root(), options, &checkpoint.weights_key);
  const std::string where =
      checkpoint.weights_key.empty() ? "" : c10::str(" in '", checkpoint.weights_key, "'");
  checkpoint.weights = StateDict(path);
  for (const auto& [key, value] : weights.entries) {
    if (key->kind != Kind::kString) {
      throw CheckpointError(
          c10::str(path, ": a key", where, " is a ", key->Describe(), ", expected a str"));
    }
    if (value->kind != Kind::kTensor) {
      throw CheckpointError(c10::str(path, ": entry '", key->text, "'", where, " is a ",
                                     value->Describe(), ", not a tensor"));
    }
    std::string name = key->text;
    if (StartsWith(name, kDataParallelPrefix)) name.erase(0, kDataParallelPrefix.size());
    checkpoint.weights.Insert(std::move(name), archive.LoadTensor(*value->tensor));
  }
  checkpoint.classes = ReadClasses(archive.root());
  return checkpoint;
}

Checkpoint LoadSafetensors(const std::string& path) {
  Checkpoint checkpoint;
  checkpoint.format = CheckpointFormat::kSafetensors;
  checkpoint.weights = StateDict(path);
  for (const auto& [name, tensor] : ReadSafetensors(path)) {
    checkpoint.weights.Insert(
        StartsWith(name, kDataParallelPrefix) ? name.substr(kDataParallelPrefix.size()) : name,
        tensor);
  }
  return checkpoint;
}

// Which dtypes ApplyStateDict converts between.
enum class DtypeKind { kFloating, kInteger, kBool, kOther };

DtypeKind KindOf(at::ScalarType dtype) {
  if (dtype == at::kBool) return DtypeKind::kBool;
  if (c10::isFloatingType(dtype)) return DtypeKind::kFloating;
  if (c10::isIntegralType(dtype, /*includeBool=*/false)) return DtypeKind::kInteger;
  return DtypeKind::kOther;
}

// Appends "\n  <title> (<n>): a, b, ... and N more" to `message`, or with `one_per_line` each
// name on a line of its own.
void AppendList(std::string& message, const char* title, const std::vector<std::string>& names,
                int max_listed, bool one_per_line) {
  if (names.empty()) return;
  message += c10::str("\n  ", title, " (", names.size(), "):");
  const size_t shown = std::min(names.size(), static_cast<size_t>(max_listed));
  for (size_t i = 0; i < shown; ++i) {
    message += (one_per_line ? "\n    " : (i ? ", " : " ")) + names[i];
  }
  if (shown < names.size()) {
    message += c10::str(one_per_line ? "\n    " : ", ", "... and ", names.size() - shown, " more");
  }
}

// Appends the parameters and buffers of `module` and its submodules in the order PyTorch's
// state_dict() lists them: each module's own parameters, then its buffers, then its children.
void AddModuleTensors(const torch::nn::Module& module, const std::string& prefix,
                      std::vector<std::pair<std::string, at::Tensor>>& targets) {
  for (const auto& item : module.named_parameters(/*recurse=*/false)) {
    targets.emplace_back(prefix + item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/false)) {
    if (item.value().defined()) targets.emplace_back(prefix + item.key(), item.value());
  }
  for (const auto& child : module.named_children()) {
    AddModuleTensors(*child.value(), prefix + child.key() + ".", targets);
  }
}

}  // namespace

void StateDict::Insert(std::string name, at::Tensor tensor) {
  if (!index_.emplace(name, entries_.size()).second) {
    throw CheckpointError(c10::str(source_.empty() ? "state dict" : source_, ": the name '", name,
                                   "' appears twice"));
  }
  entries_.emplace_back(std::move(name), std::move(tensor));
}

const at::Tensor* StateDict::Find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

Checkpoint LoadCheckpoint(const std::string& path, const LoadOptions& options) {
  switch (DetectFormat(path)) {
    case CheckpointFormat::kTorchZip:
      return LoadTorchZip(path, options);
    case CheckpointFormat::kSafetensors:
      return LoadSafetensors(path);
  }
  throw CheckpointError(c10::str(path, ": unknown checkpoint format"));
}

StateDict LoadStateDict(const std::string& path) { return LoadCheckpoint(path).weights; }

ApplyReport ApplyStateDict(const std::vector<std::pair<std::string, at::Tensor>>& targets,
                           const StateDict& weights, const ApplyOptions& options) {
  // Messages start with the file the weights came from, like every other checkpoint error.
  const std::string source =
      weights.source().empty() ? "the weights" : weights.source() + ": the weights";
  if (options.max_listed_names < 1) {
    throw CheckpointError(
        c10::str("ApplyOptions::max_listed_names must be >= 1, got ", options.max_listed_names));
  }
  std::unordered_map<std::string, size_t> target_index;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (!targets[i].second.defined()) {
      throw CheckpointError(c10::str("model tensor '", targets[i].first, "' is undefined"));
    }
    if (!target_index.emplace(targets[i].first, i).second) {
      throw CheckpointError(c10::str("the model names two tensors '", targets[i].first, "'"));
    }
  }
  const auto ignored = [&](const std::string& name) {
    return std::any_of(options.ignore_prefixes.begin(), options.ignore_prefixes.end(),
                       [&](const std::string& prefix) { return StartsWith(name, prefix); });
  };

  ApplyReport report;
  std::vector<const StateDict::Entry*> source_of(targets.size(), nullptr);
  std::vector<std::string> mismatched;
  for (const StateDict::Entry& entry : weights) {
    std::string name = entry.first;
    if (!options.select_prefix.empty()) {
      if (!StartsWith(name, options.select_prefix)) {
        ++report.skipped;
        continue;
      }
      name.erase(0, options.select_prefix.size());
    }
    if (options.rename) name = options.rename(name);
    if (name.empty() || ignored(name)) {
      ++report.skipped;
      continue;
    }
    const auto found = target_index.find(name);
    if (found == target_index.end()) {
      report.unexpected.push_back(
          name == entry.first ? name : c10::str(name, " (checkpoint '", entry.first, "')"));
      continue;
    }
    const StateDict::Entry*& source_entry = source_of[found->second];
    if (source_entry != nullptr) {
      throw CheckpointError(c10::str(source, " are ambiguous: checkpoint entries '",
                                     source_entry->first, "' and '", entry.first,
                                     "' both map to model tensor '", name, "'"));
    }
    source_entry = &entry;
    const at::Tensor& value = entry.second;
    const at::Tensor& target = targets[found->second].second;
    if (value.sizes() != target.sizes() ||
        KindOf(value.scalar_type()) != KindOf(target.scalar_type()) ||
        KindOf(value.scalar_type()) == DtypeKind::kOther) {
      mismatched.push_back(c10::str(name, ": checkpoint ", value.scalar_type(), " ", value.sizes(),
                                    " vs model ", target.scalar_type(), " ", target.sizes()));
    }
  }
  for (size_t i = 0; i < targets.size(); ++i) {
    if (source_of[i] == nullptr && !ignored(targets[i].first)) {
      report.missing.push_back(targets[i].first);
    }
  }

  const bool strict_failure =
      options.strict && (!report.missing.empty() || !report.unexpected.empty());
  if (!mismatched.empty() || strict_failure) {
    std::string message = c10::str(source, " do not match the model:");
    if (options.strict) {
      message += c10::str(" ", report.missing.size(), " missing, ", report.unexpected.size(),
                          " unexpected,");
    }
    message += c10::str(" ", mismatched.size(), " with a different shape or dtype kind");
    if (options.strict) {
      AppendList(message, "missing from the checkpoint", report.missing, options.max_listed_names,
                 /*one_per_line=*/false);
      AppendList(message, "unexpected (not in the model)", report.unexpected,
                 options.max_listed_names, /*one_per_line=*/false);
    }
    AppendList(message, "different shape or dtype kind", mismatched, options.max_listed_names,
               /*one_per_line=*/true);
    throw CheckpointError(message);
  }

  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (source_of[i] == nullptr) continue;
    at::Tensor target = targets[i].second;
    target.copy_(source_of[i]->second);
    ++report.loaded;
  }
  return report;
}

ApplyReport ApplyStateDict(torch::nn::Module& module, const StateDict& weights,
                           const ApplyOptions& options) {
  std::vector<std::pair<std::string, at::Tensor>> targets;
  AddModuleTensors(module, "", targets);
  return ApplyStateDict(targets, weights, options);
}

}  // namespace iis::models::checkpoint
