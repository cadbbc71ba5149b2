#include "server/metrics/metrics.h"

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/metrics_scrape.h"

namespace iis {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::unique_ptr<Metrics> MakeMetrics(int port = -1) {
  Metrics::Options options;
  options.port = port;
  options.bind_address = "127.0.0.1";
  absl::StatusOr<std::unique_ptr<Metrics>> metrics = Metrics::Create(options);
  EXPECT_TRUE(metrics.ok()) << metrics.status();
  return metrics.ok() ? *std::move(metrics) : nullptr;
}

TEST(MetricsTest, CountsRequestsByModelMethodAndCode) {
  std::unique_ptr<Metrics> metrics = MakeMetrics();
  ASSERT_NE(metrics, nullptr);
  EXPECT_EQ(metrics->port(), -1);
  for (int i = 0; i < 3; ++i) {
    metrics->ObserveRequest("m1", "Classify", "OK", absl::Milliseconds(3));
  }
  metrics->ObserveRequest("m1", "Classify", "INVALID_ARGUMENT", absl::Milliseconds(1));
  metrics->ObserveRequest("", "Detect", "NOT_FOUND", absl::Microseconds(50));

  const std::map<std::string, double> s = ParseExposition(metrics->Serialize());
  EXPECT_EQ(s.at(R"(iis_requests_total{code="OK",method="Classify",model="m1"})"), 3);
  EXPECT_EQ(s.at(R"(iis_requests_total{code="INVALID_ARGUMENT",method="Classify",model="m1"})"), 1);
  EXPECT_EQ(s.at(R"(iis_requests_total{code="NOT_FOUND",method="Detect",model=""})"), 1);
  EXPECT_EQ(s.at(R"(iis_request_duration_seconds_count{method="Classify",model="m1"})"), 4);
  EXPECT_NEAR(s.at(R"(iis_request_duration_seconds_sum{method="Classify",model="m1"})"), 0.010,
              1e-9);
  // 3 ms falls in the 5 ms bucket, not in the 2.5 ms one; 1 ms in the 1 ms one.
  EXPECT_EQ(s.at(R"(iis_request_duration_seconds_bucket{method="Classify",model="m1",le="0.001"})"),
            1);
  EXPECT_EQ(
      s.at(R"(iis_request_duration_seconds_bucket{method="Classify",model="m1",le="0.0025"})"), 1);
  EXPECT_EQ(s.at(R"(iis_request_duration_seconds_bucket{method="Classify",model="m1",le="0.005"})"),
            4);
  EXPECT_EQ(s.at(R"(iis_request_duration_seconds_bucket{method="Classify",model="m1",le="60"})"),
            4);
  EXPECT_EQ(s.at(R"(iis_request_duration_seconds_bucket{method="Classify",model="m1",le="+Inf"})"),
            4);
}

TEST(MetricsTest, InFlightGaugeGoesUpAndDown) {
  std::unique_ptr<Metrics> metrics = MakeMetrics();
  metrics->AddInFlight("m", "Segment", 1);
  metrics->AddInFlight("m", "Segment", 1);
  metrics->AddInFlight("m", "Segment", -1);
  const std::map<std::string, double> s = ParseExposition(metrics->Serialize());
  EXPECT_EQ(s.at(R"(iis_inflight_requests{method="Segment",model="m"})"), 1);
}

TEST(MetricsTest, ModelInstrumentsRecordStagesBatchesQueueAndLoadTime) {
  std::unique_ptr<Metrics> metrics = MakeMetrics();
  ModelMetrics* model = metrics->ForModel("det");
  EXPECT_EQ(metrics->ForModel("det"), model);  // created once
  model->ObserveQueue(absl::Milliseconds(2));
  model->ObservePreprocess(absl::Milliseconds(20));
  model->ObservePostprocess(absl::Milliseconds(200));
  model->ObserveBatch(absl::Seconds(2), 3);
  model->ObserveBatch(absl::Seconds(1), 1);
  model->AddQueueDepth(5);
  model->AddQueueDepth(-2);
  model->SetLoadTime(absl::Milliseconds(1500));
  model->SetQueueCapacity(48);
  const std::map<std::string, double> s = ParseExposition(metrics->Serialize());
  EXPECT_EQ(s.at(R"(iis_queue_duration_seconds_count{model="det"})"), 1);
  EXPECT_NEAR(s.at(R"(iis_queue_duration_seconds_sum{model="det"})"), 0.002, 1e-9);
  EXPECT_NEAR(s.at(R"(iis_preprocess_duration_seconds_sum{model="det"})"), 0.02, 1e-9);
  EXPECT_NEAR(s.at(R"(iis_postprocess_duration_seconds_sum{model="det"})"), 0.2, 1e-9);
  EXPECT_EQ(s.at(R"(iis_inference_duration_seconds_count{model="det"})"), 2);
  EXPECT_NEAR(s.at(R"(iis_inference_duration_seconds_sum{model="det"})"), 3.0, 1e-9);
  EXPECT_EQ(s.at(R"(iis_batch_size_count{model="det"})"), 2);
  EXPECT_EQ(s.at(R"(iis_batch_size_sum{model="det"})"), 4);
  EXPECT_EQ(s.at(R"(iis_batch_size_bucket{model="det",le="1"})"), 1);
  EXPECT_EQ(s.at(R"(iis_batch_size_bucket{model="det",le="2"})"), 1);
  EXPECT_EQ(s.at(R"(iis_batch_size_bucket{model="det",le="4"})"), 2);
  EXPECT_EQ(s.at(R"(iis_queue_depth{model="det"})"), 3);
  EXPECT_EQ(s.at(R"(iis_model_load_duration_seconds{model="det"})"), 1.5);
  EXPECT_EQ(s.at(R"(iis_queue_capacity{model="det"})"), 48);
}

TEST(MetricsTest, ScrapeTimeProcessAndGpuFigures) {
  std::unique_ptr<Metrics> metrics = MakeMetrics();
  std::string text = metrics->Serialize();
  EXPECT_THAT(text, Not(HasSubstr("iis_gpu_memory")));
  std::map<std::string, double> s = ParseExposition(text);
  // At least the pages this test binary touches, and less than the machine could hold.
  EXPECT_GT(s.at("process_resident_memory_bytes"), 1 << 20);
  EXPECT_LT(s.at("process_resident_memory_bytes"), 1e12);
  EXPECT_GE(s.at("process_cpu_seconds_total"), 0);

  int64_t allocated = 100;
  metrics->SetGpuMemorySource([&allocated] {
    return std::vector<Metrics::GpuMemory>{{"cuda:0", allocated, 4096}, {"cuda:1", 0, 0}};
  });
  s = ParseExposition(metrics->Serialize());
  EXPECT_EQ(s.at(R"(iis_gpu_memory_allocated_bytes{device="cuda:0"})"), 100);
  EXPECT_EQ(s.at(R"(iis_gpu_memory_reserved_bytes{device="cuda:0"})"), 4096);
  EXPECT_EQ(s.at(R"(iis_gpu_memory_allocated_bytes{device="cuda:1"})"), 0);
  allocated = 12345;  // sampled at each scrape
  s = ParseExposition(metrics->Serialize());
  EXPECT_EQ(s.at(R"(iis_gpu_memory_allocated_bytes{device="cuda:0"})"), 12345);
}

TEST(MetricsTest, ServesTheExpositionOverHttp) {
  std::unique_ptr<Metrics> metrics = MakeMetrics(0);
  ASSERT_NE(metrics, nullptr);
  ASSERT_GT(metrics->port(), 0);
  metrics->ObserveRequest("m", "GetModel", "OK", absl::Milliseconds(1));
  const std::string response = HttpGet(metrics->port(), "/metrics");
  EXPECT_THAT(response, HasSubstr("200 OK"));
  EXPECT_THAT(response,
              HasSubstr(R"(iis_requests_total{code="OK",method="GetModel",model="m"} 1)"));
  EXPECT_THAT(response, HasSubstr("# TYPE iis_request_duration_seconds histogram"));
  EXPECT_THAT(response, HasSubstr("process_resident_memory_bytes"));
}

TEST(MetricsTest, EndpointAnswersOtherPathsAndMethodsSensibly) {
  std::unique_ptr<Metrics> metrics = MakeMetrics(0);
  ASSERT_NE(metrics, nullptr);
  EXPECT_THAT(HttpGet(metrics->port(), "/"), HasSubstr("200 OK"));
  EXPECT_THAT(HttpGet(metrics->port(), "/metrics?x=1"), HasSubstr("process_cpu_seconds_total"));
  EXPECT_THAT(HttpGet(metrics->port(), "/other"), HasSubstr("404"));
  EXPECT_THAT(HttpRequest(metrics->port(), "POST", "/metrics"), HasSubstr("405"));
  const std::string head = HttpRequest(metrics->port(), "HEAD", "/metrics");
  EXPECT_THAT(head, HasSubstr("200 OK"));
  EXPECT_THAT(head, Not(HasSubstr("process_cpu_seconds_total")));
  EXPECT_THAT(HttpRequest(metrics->port(), std::string(20000, 'G'), "/"), HasSubstr("431"));
  // Still serving after all that.
  EXPECT_THAT(HttpGet(metrics->port(), "/metrics"), HasSubstr("200 OK"));
}

TEST(MetricsTest, RefusesABusyPortAndBadOptions) {
  std::unique_ptr<Metrics> first = MakeMetrics(0);
  ASSERT_NE(first, nullptr);
  Metrics::Options options;
  options.bind_address = "127.0.0.1";
  options.port = first->port();
  absl::StatusOr<std::unique_ptr<Metrics>> second = Metrics::Create(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr(absl::StrCat("127.0.0.1:", first->port())));
  options.port = 70000;
  EXPECT_EQ(Metrics::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCounted) {
  std::unique_ptr<Metrics> metrics = MakeMetrics();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics, t] {
      for (int i = 0; i < 1000; ++i) {
        metrics->ObserveRequest(absl::StrCat("m", t % 2), "Classify", i % 2 ? "OK" : "CANCELLED",
                                absl::Microseconds(i));
        metrics->AddInFlight("m", "Classify", 1);
        metrics->AddInFlight("m", "Classify", -1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const std::map<std::string, double> s = ParseExposition(metrics->Serialize());
  EXPECT_EQ(s.at(R"(iis_requests_total{code="OK",method="Classify",model="m0"})"), 1000);
  EXPECT_EQ(s.at(R"(iis_requests_total{code="CANCELLED",method="Classify",model="m1"})"), 1000);
  EXPECT_EQ(s.at(R"(iis_inflight_requests{method="Classify",model="m"})"), 0);
}

}  // namespace
}  // namespace iis
