#include "server/engine/model_catalog.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace iis {
namespace {

// Quotes a client-supplied string for an error message: escaped and at most 64 bytes.
std::string Quote(absl::string_view s) {
  constexpr size_t kMax = 64;
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, kMax)), s.size() > kMax ? "...\"" : "\"");
}

}  // namespace

bool IsValidModelName(absl::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

ModelCatalog::ModelCatalog(std::vector<ModelMetadata> models) : models_(std::move(models)) {
  std::sort(models_.begin(), models_.end(),
            [](const ModelMetadata& a, const ModelMetadata& b) { return a.name < b.name; });
  for (size_t i = 0; i < models_.size(); ++i) {
    by_name_.emplace(models_[i].name, i);
    if (models_[i].is_default) default_of_.emplace(models_[i].task, i);
    absl::StrAppend(&served_names_, i == 0 ? "" : ", ", models_[i].name);
  }
}

absl::StatusOr<const ModelMetadata*> ModelCatalog::Find(absl::string_view name,
                                                        absl::string_view field) const {
  if (!IsValidModelName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be 1 to 128 characters of [A-Za-z0-9._-], got ", Quote(name)));
  }
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return absl::NotFoundError(
        absl::StrCat("model ", Quote(name), " is not served; served models: ", served_names_));
  }
  return &models_[it->second];
}

absl::StatusOr<const ModelMetadata*> ModelCatalog::Resolve(Task task, absl::string_view name,
                                                           const ModelMetadata** served) const {
  if (served != nullptr) *served = nullptr;
  if (name.empty()) {
    auto it = default_of_.find(task);
    if (it == default_of_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no ", std::string(TaskName(task)), " model is served"));
    }
    if (served != nullptr) *served = &models_[it->second];
    return &models_[it->second];
  }
  absl::StatusOr<const ModelMetadata*> model = Find(name);
  if (!model.ok()) return model;
  if (served != nullptr) *served = *model;
  if ((*model)->task != task) {
    return absl::InvalidArgumentError(absl::StrCat("model ", (*model)->name, " serves ",
                                                   std::string(TaskName((*model)->task)), ", not ",
                                                   std::string(TaskName(task))));
  }
  return model;
}

}  // namespace iis
