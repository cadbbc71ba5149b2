#include "client/common/requests.h"
#include "common/command_line.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace pb = ::internimage::serving::v1;

// Parses `args` as the request options of a command line, then takes those of `task`.
absl::StatusOr<RequestOptions> ParseFor(pb::Task task, std::vector<std::string> args) {
  CLI::App app;
  RequestFlags flags;
  AddRequestOptions(app, &flags);
  auto parsed = common::ParseCommandLine(app, std::move(args));
  if (!parsed.ok()) return parsed.status();
  return RequestOptionsFor(flags, task);
}

TEST(RequestsTest, BuildsEachRequestFromItsOptions) {
  pb::Image image;
  image.set_encoded("jpegbytes");
  auto options = ParseFor(pb::TASK_DETECTION, {"--model", "det", "--score-threshold", "0.3",
                                               "--max-detections", "7", "--no-masks"});
  ASSERT_TRUE(options.ok()) << options.status();
  const pb::DetectRequest detect = MakeDetectRequest(*options, image);
  EXPECT_EQ(detect.model(), "det");
  EXPECT_FLOAT_EQ(detect.score_threshold(), 0.3f);
  EXPECT_EQ(detect.max_detections(), 7);
  EXPECT_EQ(detect.mask_encoding(), pb::MASK_ENCODING_NONE);
  EXPECT_EQ(detect.image().encoded(), "jpegbytes");

  options = ParseFor(pb::TASK_CLASSIFICATION, {"--top-k", "3"});
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(MakeClassifyRequest(*options, image).top_k(), 3);
  EXPECT_EQ(MakeClassifyRequest(*options, image).model(), "");

  options = ParseFor(pb::TASK_SEGMENTATION, {"--counts-only", "--raw"});
  ASSERT_TRUE(options.ok());
  EXPECT_TRUE(MakeSegmentRequest(*options, image).counts_only());
  EXPECT_TRUE(options->raw);
  EXPECT_EQ(MakeDetectRequest(RequestOptions{}, image).mask_encoding(), pb::MASK_ENCODING_RLE);
}

TEST(RequestsTest, RejectsOptionsOfAnotherTask) {
  auto options = ParseFor(pb::TASK_DETECTION, {"--top-k", "3"});
  ASSERT_FALSE(options.ok());
  EXPECT_EQ(options.status().message(), "--top-k applies to classify only, not to detect");
  EXPECT_FALSE(ParseFor(pb::TASK_CLASSIFICATION, {"--counts-only"}).ok());
  EXPECT_FALSE(ParseFor(pb::TASK_SEGMENTATION, {"--no-masks"}).ok());
}

TEST(RequestsTest, TensorSizeIsParsedAndExcludesRaw) {
  auto options = ParseFor(pb::TASK_CLASSIFICATION, {"--tensor", "224"});
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->tensor_size, 224);
  EXPECT_FALSE(ParseFor(pb::TASK_CLASSIFICATION, {"--tensor", "0"}).ok());
  EXPECT_THAT(
      std::string(
          ParseFor(pb::TASK_CLASSIFICATION, {"--tensor", "224", "--raw"}).status().message()),
      HasSubstr("exclude each other"));
}

TEST(RequestsTest, RejectsOutOfRangeValues) {
  EXPECT_THAT(
      std::string(ParseFor(pb::TASK_DETECTION, {"--score-threshold", "1"}).status().message()),
      HasSubstr("--score-threshold: expected a number in [0, 1), got '1'"));
  EXPECT_FALSE(ParseFor(pb::TASK_DETECTION, {"--score-threshold", "-0.1"}).ok());
  EXPECT_FALSE(ParseFor(pb::TASK_DETECTION, {"--max-detections", "-1"}).ok());
  EXPECT_FALSE(ParseFor(pb::TASK_CLASSIFICATION, {"--top-k", "0"}).ok());
  EXPECT_THAT(std::string(ParseFor(pb::TASK_CLASSIFICATION, {"--model="}).status().message()),
              HasSubstr("--model: expected a model name"));
}

TEST(RequestsTest, NamesTasksAndTheGivenOptions) {
  EXPECT_EQ(TaskCommandName(pb::TASK_CLASSIFICATION), "classify");
  EXPECT_EQ(TaskCommandName(pb::TASK_DETECTION), "detect");
  EXPECT_EQ(TaskCommandName(pb::TASK_SEGMENTATION), "segment");
  EXPECT_EQ(ProtoTaskName(pb::TASK_SEGMENTATION), "segmentation");
  RequestFlags flags;
  EXPECT_TRUE(GivenRequestOptions(flags).empty());
  flags.no_masks = true;
  flags.top_k = 3;
  flags.model = "m";
  EXPECT_THAT(GivenRequestOptions(flags), ElementsAre("model", "top-k", "no-masks"));
}

}  // namespace
}  // namespace iis::client
