// The served models as a front end and the engine look them up: by name, or by task for requests
// that name no model. The one implementation of model resolution and of its error messages; the
// gRPC front end resolves every request with it, and the runtime checks what it is given the same
// way. Torch-free; immutable after construction, so thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/engine/engine.h"

namespace iis {

// Returns true for a valid model name: 1 to 128 characters of [A-Za-z0-9._-]. The configuration
// applies it to the names it serves and the catalog to the names clients send.
bool IsValidModelName(absl::string_view name);

class ModelCatalog {
 public:
  // `models` must have distinct names; at most one per task should be marked is_default (the
  // first one marked is used).
  explicit ModelCatalog(std::vector<ModelMetadata> models);

  // Returns every model, sorted by name.
  const std::vector<ModelMetadata>& models() const { return models_; }

  // Returns the served model called `name`. Errors (messages start with `field`, the request
  // field the name came from, and quote the name escaped and cut to 64 bytes):
  //   INVALID_ARGUMENT  `name` is not a valid model name;
  //   NOT_FOUND         no model of that name is served (the message lists the served ones).
  absl::StatusOr<const ModelMetadata*> Find(absl::string_view name,
                                            absl::string_view field = "model") const;

  // Returns the model a request for `task` naming `name` runs on: the task's default model when
  // `name` is empty, else the model called `name`, which must perform `task`. Errors: those of
  // Find; NOT_FOUND when no model of `task` is served; INVALID_ARGUMENT when `name` performs
  // another task. `served`, when not null, is set to the named model whenever one is served under
  // `name` (also when its task is wrong), else to null.
  absl::StatusOr<const ModelMetadata*> Resolve(Task task, absl::string_view name,
                                               const ModelMetadata** served = nullptr) const;

 private:
  std::vector<ModelMetadata> models_;  // sorted by name
  std::map<std::string, size_t, std::less<>> by_name_;
  std::map<Task, size_t> default_of_;
  std::string served_names_;  // "a, b, c" for NOT_FOUND messages
};

}  // namespace iis
