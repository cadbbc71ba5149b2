#include "client/common/requests.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::client {
namespace {

using ::testing::HasSubstr;
namespace pb = ::internimage::serving::v1;

absl::StatusOr<RequestOptions> ParseFor(VisionTask task, std::vector<std::string> args) {
  auto parsed = ParsedArgs::Parse(args, RequestFlagSpecs());
  if (!parsed.ok()) return parsed.status();
  return ParseRequestFlags(*parsed, task);
}

TEST(RequestsTest, BuildsEachRequestFromItsOptions) {
  pb::Image image;
  image.set_encoded("jpegbytes");
  auto options = ParseFor(VisionTask::kDetect, {"--model", "det", "--score-threshold", "0.3",
                                                "--max-detections", "7", "--no-masks"});
  ASSERT_TRUE(options.ok()) << options.status();
  const pb::DetectRequest detect = MakeDetectRequest(*options, image);
  EXPECT_EQ(detect.model(), "det");
  EXPECT_FLOAT_EQ(detect.score_threshold(), 0.3f);
  EXPECT_EQ(detect.max_detections(), 7);
  EXPECT_EQ(detect.mask_encoding(), pb::MASK_ENCODING_NONE);
  EXPECT_EQ(detect.image().encoded(), "jpegbytes");

  options = ParseFor(VisionTask::kClassify, {"--top-k", "3"});
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(MakeClassifyRequest(*options, image).top_k(), 3);
  EXPECT_EQ(MakeClassifyRequest(*options, image).model(), "");

  options = ParseFor(VisionTask::kSegment, {"--counts-only", "--raw"});
  ASSERT_TRUE(options.ok());
  EXPECT_TRUE(MakeSegmentRequest(*options, image).counts_only());
  EXPECT_TRUE(options->raw);
  EXPECT_EQ(MakeDetectRequest(RequestOptions{}, image).mask_encoding(), pb::MASK_ENCODING_RLE);
}

TEST(RequestsTest, RejectsOptionsOfAnotherTask) {
  auto options = ParseFor(VisionTask::kDetect, {"--top-k", "3"});
  ASSERT_FALSE(options.ok());
  EXPECT_EQ(options.status().message(), "--top-k applies to classify only, not to detect");
  EXPECT_FALSE(ParseFor(VisionTask::kClassify, {"--counts-only"}).ok());
  EXPECT_FALSE(ParseFor(VisionTask::kSegment, {"--no-masks"}).ok());
}

TEST(RequestsTest, TensorSizeIsParsedAndExcludesRaw) {
  auto options = ParseFor(VisionTask::kClassify, {"--tensor", "224"});
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->tensor_size, 224);
  EXPECT_FALSE(ParseFor(VisionTask::kClassify, {"--tensor", "0"}).ok());
  EXPECT_THAT(std::string(ParseFor(VisionTask::kClassify, {"--tensor", "224", "--raw"}).status().message()),
              HasSubstr("exclude each other"));
}

TEST(RequestsTest, RejectsOutOfRangeValues) {
  EXPECT_THAT(
      std::string(ParseFor(VisionTask::kDetect, {"--score-threshold", "1"}).status().message()),
      HasSubstr("--score-threshold: expected a number in [0, 1), got '1'"));
  EXPECT_FALSE(ParseFor(VisionTask::kDetect, {"--score-threshold", "-0.1"}).ok());
  EXPECT_FALSE(ParseFor(VisionTask::kDetect, {"--max-detections", "-1"}).ok());
  EXPECT_FALSE(ParseFor(VisionTask::kClassify, {"--top-k", "0"}).ok());
  EXPECT_THAT(std::string(ParseFor(VisionTask::kClassify, {"--model="}).status().message()),
              HasSubstr("--model: expected a model name"));
}

}  // namespace
}  // namespace iis::client
