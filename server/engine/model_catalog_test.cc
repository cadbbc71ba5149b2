#include "server/engine/model_catalog.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis {
namespace {

using ::testing::HasSubstr;

ModelMetadata Model(std::string name, Task task, bool is_default) {
  ModelMetadata m;
  m.name = std::move(name);
  m.task = task;
  m.is_default = is_default;
  return m;
}

ModelCatalog Catalog() {
  return ModelCatalog({Model("seg", Task::kSegmentation, true),
                       Model("cls_b", Task::kClassification, false),
                       Model("cls", Task::kClassification, true)});
}

TEST(ModelCatalogTest, ListsModelsByNameAndResolvesDefaults) {
  const ModelCatalog catalog = Catalog();
  ASSERT_EQ(catalog.models().size(), 3u);
  EXPECT_EQ(catalog.models()[0].name, "cls");
  EXPECT_EQ(catalog.models()[2].name, "seg");
  EXPECT_EQ((*catalog.Resolve(Task::kClassification, ""))->name, "cls");
  EXPECT_EQ((*catalog.Resolve(Task::kClassification, "cls_b"))->name, "cls_b");
  EXPECT_EQ((*catalog.Resolve(Task::kSegmentation, ""))->name, "seg");
  absl::Status none = catalog.Resolve(Task::kDetection, "").status();
  EXPECT_EQ(none.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(none.message(), "no detection model is served");
}

TEST(ModelCatalogTest, ErrorsSayWhatWasWrong) {
  const ModelCatalog catalog = Catalog();
  const ModelMetadata* served = nullptr;
  absl::Status unknown = catalog.Resolve(Task::kClassification, "nope", &served).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.message(), "model \"nope\" is not served; served models: cls, cls_b, seg");
  EXPECT_EQ(served, nullptr);

  absl::Status wrong = catalog.Resolve(Task::kClassification, "seg", &served).status();
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong.message(), "model seg serves segmentation, not classification");
  ASSERT_NE(served, nullptr);  // served, under another task: still a known label
  EXPECT_EQ(served->name, "seg");

  absl::Status bad = catalog.Find("a/b\n", "name").status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "name must be 1 to 128 characters of [A-Za-z0-9._-], got \"a/b\\n\"");
  absl::Status longer = catalog.Find(std::string(200, 'm')).status();
  EXPECT_THAT(longer.message(), HasSubstr("got \"" + std::string(64, 'm') + "...\""));
}

TEST(ModelCatalogTest, ModelNames) {
  EXPECT_TRUE(IsValidModelName("internimage_t_1k_224"));
  EXPECT_TRUE(IsValidModelName("a.b-c_9"));
  EXPECT_TRUE(IsValidModelName(std::string(128, 'a')));
  EXPECT_FALSE(IsValidModelName(""));
  EXPECT_FALSE(IsValidModelName("a/b"));
  EXPECT_FALSE(IsValidModelName(std::string(129, 'a')));
}

}  // namespace
}  // namespace iis
