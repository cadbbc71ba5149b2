#include "models/registry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/placement.h"

namespace iis::models {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(RegistryTest, EveryArchitectureDescribesItsTaskInputClassesAndDefaults) {
  ASSERT_FALSE(Architectures().empty());
  for (const Architecture& a : Architectures()) {
    EXPECT_EQ(FindArchitecture(a.name), &a) << a.name;
    ASSERT_NE(a.class_names, nullptr) << a.name;
    EXPECT_EQ(static_cast<int>(a.class_names->size()), a.num_classes) << a.name;
    switch (a.task) {
      case Task::kClassification:
        EXPECT_EQ(a.num_classes, 1000) << a.name;
        EXPECT_GT(a.input_size, 0) << a.name;
        EXPECT_EQ(a.default_max_batch_size, 8) << a.name;
        break;
      case Task::kDetection:
      case Task::kSegmentation:
        EXPECT_EQ(a.num_classes, a.task == Task::kDetection ? 80 : 150) << a.name;
        EXPECT_GT(a.scale_long, a.scale_short) << a.name;
        EXPECT_EQ(a.default_max_batch_size, 2) << a.name;
        break;
    }
  }
  EXPECT_EQ(FindArchitecture("internimage_t_1k_224")->task, Task::kClassification);
  EXPECT_EQ(FindArchitecture("mask_rcnn_internimage_t_fpn_1x_coco")->task, Task::kDetection);
  EXPECT_EQ(FindArchitecture("upernet_internimage_t_512_160k_ade20k")->task, Task::kSegmentation);
  EXPECT_EQ(FindArchitecture("internimage_x_1k_224"), nullptr);
  EXPECT_EQ(FindArchitecture(""), nullptr);
}

TEST(RegistryTest, ArchitectureNamesListsOneTask) {
  const std::string detection = ArchitectureNames(Task::kDetection);
  EXPECT_THAT(detection, HasSubstr("mask_rcnn_internimage_t_fpn_1x_coco, "));
  EXPECT_THAT(detection, Not(HasSubstr("upernet")));
  EXPECT_EQ(TaskName(Task::kSegmentation), "segmentation");
}

TEST(PlacementTest, ParsesEveryDeviceSpellingAndNothingElse) {
  EXPECT_EQ(ParseDevice("auto")->kind, DeviceSpec::Kind::kAuto);
  EXPECT_EQ(ParseDevice("cpu")->kind, DeviceSpec::Kind::kCpu);
  EXPECT_EQ(ParseDevice("cuda")->kind, DeviceSpec::Kind::kCuda);
  EXPECT_EQ(ParseDevice("cuda")->index, -1);
  EXPECT_EQ(ParseDevice("cuda:0")->index, 0);
  EXPECT_EQ(ParseDevice("cuda:12")->index, 12);
  for (const char* bad : {"", "CPU", "gpu", "cuda:", "cuda:-1", "cuda:1x", "cuda:1234", " cpu"}) {
    EXPECT_FALSE(ParseDevice(bad).has_value()) << bad;
  }
}

TEST(PlacementTest, ParsesPrecisionsAndKnowsWhereTheyRun) {
  for (Precision p : {Precision::kFloat32, Precision::kFloat16, Precision::kBFloat16}) {
    EXPECT_EQ(ParsePrecision(PrecisionName(p)), p);
    EXPECT_EQ(PrecisionProblem(p, DeviceSpec::Kind::kCuda), "");
  }
  EXPECT_FALSE(ParsePrecision("fp16").has_value());
  EXPECT_EQ(PrecisionProblem(Precision::kFloat32, DeviceSpec::Kind::kCpu), "");
  EXPECT_EQ(PrecisionProblem(Precision::kFloat16, DeviceSpec::Kind::kCpu),
            "precision float16 needs a CUDA device");
}

}  // namespace
}  // namespace iis::models
