#include "client/loadgen/report.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "client/loadgen/plot.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgproc.hpp"

namespace iis::client {
namespace {

using ::testing::HasSubstr;

StepResult MakeStep(int concurrency, int64_t ok, int64_t base_ns) {
  StepResult r;
  r.step.concurrency = concurrency;
  r.sent = ok + 2;
  r.ok = ok;
  r.failed = 2;
  r.errors["UNAVAILABLE"] = 2;
  r.error_text["UNAVAILABLE"] = "draining";
  r.ok_per_target = {ok / 2, ok - ok / 2};
  r.failed_per_target = {2, 0};
  r.elapsed_s = 2.0;
  r.throughput_rps = ok / 2.0;
  for (int64_t i = 1; i <= ok; ++i) r.latency.Record(base_ns * i);
  r.server.answers = ok;
  r.server.inference_us = 1500;
  r.server.batch_size = 3;
  r.cpu_s = 0.5;
  return r;
}

RunSummary Summary() {
  RunSummary s;
  s.rpc = "classify";
  s.targets = {"a:1", "b:2"};
  s.duration = absl::Seconds(2);
  return s;
}

TEST(ReportTest, JsonHoldsCountsAndPercentilesPerStep) {
  const std::vector<StepResult> steps = {MakeStep(1, 100, 1'000'000), MakeStep(4, 200, 2'000'000)};
  const std::string json = FormatReportJson(Summary(), steps);
  EXPECT_THAT(json, HasSubstr("\"steps\": ["));
  EXPECT_THAT(json, HasSubstr("\"concurrency\": 4"));
  EXPECT_THAT(json, HasSubstr("\"requests_ok\": 200"));
  EXPECT_THAT(json, HasSubstr("\"requests_failed\": 2"));
  EXPECT_THAT(json, HasSubstr("\"UNAVAILABLE\": 2"));
  // 100 samples of 1..100 ms: p50 is 50 ms, p99 99 ms (within the histogram's 0.05%).
  EXPECT_THAT(json, HasSubstr("\"p50\": 49.9"));
  EXPECT_THAT(json, HasSubstr("\"p99\": 98.9"));
  EXPECT_THAT(json, HasSubstr("\"inference\": 1.5"));
  EXPECT_THAT(json, HasSubstr("\"target\": \"b:2\""));
  // 0.5 s of CPU over the first step's 102 calls.
  EXPECT_THAT(json, HasSubstr("\"ms_per_1000_requests\": 4901.96"));
}

TEST(ReportTest, CsvHasAHeaderAndOneRowPerStep) {
  const std::vector<StepResult> steps = {MakeStep(1, 100, 1'000'000), MakeStep(4, 200, 2'000'000)};
  const std::string csv = FormatReportCsv(Summary(), steps);
  const std::vector<std::string> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  const std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  const std::vector<std::string> row = absl::StrSplit(lines[2], ',');
  ASSERT_EQ(header.size(), row.size());
  EXPECT_EQ(header[2], "concurrency");
  EXPECT_EQ(row[2], "4");
  EXPECT_EQ(header[5], "requests_ok");
  EXPECT_EQ(row[5], "200");
  EXPECT_EQ(row.back(), "UNAVAILABLE=2");
}

TEST(ReportTest, TableShowsEveryStepAndTheBreakdowns) {
  const std::vector<StepResult> steps = {MakeStep(1, 100, 1'000'000), MakeStep(4, 200, 2'000'000)};
  const std::string table = FormatReportTable(Summary(), steps);
  EXPECT_THAT(table, HasSubstr("closed loop"));
  EXPECT_THAT(table, HasSubstr("server time per answer"));
  EXPECT_THAT(table, HasSubstr("UNAVAILABLE x2"));
  EXPECT_THAT(table, HasSubstr("a:1 100/2, b:2 100/0"));
  EXPECT_THAT(table, HasSubstr("p99.9"));
}

TEST(PlotTest, RendersAxesAndSeries) {
  const std::vector<StepResult> steps = {MakeStep(1, 100, 1'000'000), MakeStep(2, 150, 1'500'000),
                                         MakeStep(8, 200, 3'000'000)};
  const cv::Mat plot = RenderPlot(Summary(), steps);
  ASSERT_EQ(plot.cols, 1000);
  ASSERT_EQ(plot.rows, 760);
  // Not blank, and every series colour is present (p50 blue, p90 orange, p99 red, ok green).
  cv::Mat grey;
  cv::cvtColor(plot, grey, cv::COLOR_BGR2GRAY);
  EXPECT_GT(cv::countNonZero(grey < 128), 2000);
  for (const cv::Scalar& colour : {cv::Scalar(180, 119, 31), cv::Scalar(14, 127, 255),
                                   cv::Scalar(40, 39, 214), cv::Scalar(44, 160, 44)}) {
    cv::Mat match;
    cv::inRange(plot, colour - cv::Scalar::all(2), colour + cv::Scalar::all(2), match);
    EXPECT_GT(cv::countNonZero(match), 50) << colour;
  }
}

}  // namespace
}  // namespace iis::client
