// Integration tests of the load driver against small in-process gRPC servers.
#include "client/loadgen/runner.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client/common/channel.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "internimage/serving/v1/vision.grpc.pb.h"

namespace iis::client {
namespace {

namespace pb = ::internimage::serving::v1;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

void SetTiming(pb::ResponseMetadata* metadata) {
  metadata->set_model("cls");
  metadata->set_batch_size(2);
  pb::Timing* timing = metadata->mutable_timing();
  timing->set_queue_us(100);
  timing->set_preprocess_us(200);
  timing->set_inference_us(300);
  timing->set_postprocess_us(50);
  timing->set_total_us(700);
}

// Answers every RPC at once with fixed content; counts calls. Classify can be made slow.
class TestVisionService final : public pb::VisionService::Service {
 public:
  std::atomic<int> classify_calls{0};
  std::atomic<int> get_model_calls{0};
  std::atomic<int> classify_delay_ms{0};

  grpc::Status Classify(grpc::ServerContext*, const pb::ClassifyRequest* request,
                        pb::ClassifyResponse* response) override {
    ++classify_calls;
    if (classify_delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(classify_delay_ms.load()));
    }
    if (!request->image().has_encoded()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no image");
    }
    SetTiming(response->mutable_metadata());
    response->add_classes()->set_label("tabby");
    return grpc::Status::OK;
  }
  grpc::Status Detect(grpc::ServerContext*, const pb::DetectRequest*,
                      pb::DetectResponse* response) override {
    SetTiming(response->mutable_metadata());
    return grpc::Status::OK;
  }
  grpc::Status Segment(grpc::ServerContext*, const pb::SegmentRequest*,
                       pb::SegmentResponse*) override {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "segment is broken here");
  }
  grpc::Status ListModels(grpc::ServerContext*, const pb::ListModelsRequest*,
                          pb::ListModelsResponse* response) override {
    pb::ModelInfo* cls = response->add_models();
    cls->set_name("cls");
    cls->set_task(pb::TASK_CLASSIFICATION);
    cls->set_is_default(true);
    pb::ModelInfo* det = response->add_models();
    det->set_name("det");
    det->set_task(pb::TASK_DETECTION);
    return grpc::Status::OK;
  }
  grpc::Status GetModel(grpc::ServerContext*, const pb::GetModelRequest* request,
                        pb::ModelInfo* response) override {
    ++get_model_calls;
    if (request->name() != "cls" && request->name() != "det") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown model " + request->name());
    }
    response->set_name(request->name());
    return grpc::Status::OK;
  }
};

class TestHealthService final : public grpc::health::v1::Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext*, const HealthCheckRequest*,
                     HealthCheckResponse* response) override {
    response->set_status(HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

struct TestServer {
  TestVisionService vision;
  TestHealthService health;
  std::unique_ptr<grpc::Server> server;
  std::string target;

  TestServer() {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&vision);
    builder.RegisterService(&health);
    server = builder.BuildAndStart();
    target = "127.0.0.1:" + std::to_string(port);
  }
  ~TestServer() { server->Shutdown(std::chrono::system_clock::now()); }
};

std::shared_ptr<grpc::Channel> Connect(const std::string& target, int id = 0) {
  ChannelOptions options;
  options.target = target;
  options.connection_id = id;
  return *CreateChannel(options);
}

Workload ClassifyWorkload() {
  return *Workload::Create(LoadRpc::kClassify, RequestOptions{},
                           {InputImage{"a", "jpeg-a"}, InputImage{"b", "jpeg-b"}});
}

TEST(LoadRunnerTest, ClosedLoopSendsExactlyTheRequestBudget) {
  TestServer server;
  const Workload workload = ClassifyWorkload();
  RunOptions options;
  options.requests = 200;
  LoadRunner runner({Endpoint{Connect(server.target), 0}}, 1, workload, options);
  const StepResult result = runner.Run(LoadStep{4, 0});
  EXPECT_EQ(result.sent, 200);
  EXPECT_EQ(result.ok, 200);
  EXPECT_EQ(result.failed, 0);
  EXPECT_EQ(result.warmup_calls, 0);
  EXPECT_EQ(server.vision.classify_calls.load(), 200);
  EXPECT_EQ(result.latency.count(), 200);
  EXPECT_GT(result.latency.min(), 0);
  EXPECT_GT(result.throughput_rps, 0);
  EXPECT_EQ(result.ok_per_target, std::vector<int64_t>{200});
  // The server-side breakdown is the mean of the answers' metadata.
  EXPECT_EQ(result.server.answers, 200);
  EXPECT_DOUBLE_EQ(result.server.queue_us, 100);
  EXPECT_DOUBLE_EQ(result.server.inference_us, 300);
  EXPECT_DOUBLE_EQ(result.server.total_us, 700);
  EXPECT_DOUBLE_EQ(result.server.batch_size, 2);
  EXPECT_GT(result.cpu_s, 0);
}

TEST(LoadRunnerTest, WarmupCallsAreSentButNotMeasured) {
  TestServer server;
  const Workload workload = ClassifyWorkload();
  RunOptions options;
  options.warmup = absl::Milliseconds(200);
  options.duration = absl::Milliseconds(300);
  LoadRunner runner({Endpoint{Connect(server.target), 0}}, 1, workload, options);
  const auto start = std::chrono::steady_clock::now();
  const StepResult result = runner.Run(LoadStep{2, 0});
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(result.warmup_calls, 0);
  EXPECT_GT(result.ok, 0);
  EXPECT_EQ(result.ok + result.failed, result.sent);
  EXPECT_EQ(result.latency.count(), result.ok);
  // Every call reached the server: the measured ones plus the warm-up.
  EXPECT_EQ(server.vision.classify_calls.load(), result.sent + result.warmup_calls);
  EXPECT_GE(result.elapsed_s, 0.29);
  EXPECT_LT(result.elapsed_s, 1.0);
  EXPECT_GE(wall, 0.49);
}

TEST(LoadRunnerTest, OpenLoopSendsAtTheRequestedRate) {
  TestServer server;
  const Workload workload = ClassifyWorkload();
  RunOptions options;
  options.duration = absl::Seconds(1);
  options.arrivals = ArrivalProcess::kConstant;
  LoadRunner runner({Endpoint{Connect(server.target), 0}}, 1, workload, options);
  const StepResult constant = runner.Run(LoadStep{0, 400});
  EXPECT_NEAR(constant.sent, 400, 2);
  EXPECT_EQ(constant.ok, constant.sent);
  // Throughput counts to the last answer, so slow answers on a busy machine lower it a little.
  EXPECT_GT(constant.throughput_rps, 300);
  EXPECT_LT(constant.throughput_rps, 420);

  options.arrivals = ArrivalProcess::kPoisson;
  options.seed = 5;
  LoadRunner poisson_runner({Endpoint{Connect(server.target), 0}}, 1, workload, options);
  const StepResult poisson = poisson_runner.Run(LoadStep{0, 400});
  // Poisson(400) has a standard deviation of 20.
  EXPECT_NEAR(poisson.sent, 400, 80);
  EXPECT_EQ(server.vision.classify_calls.load(), constant.sent + poisson.sent);
}

TEST(LoadRunnerTest, HighOpenLoopRatesSendEveryArrivalOnce) {
  // At this rate several threads share the sending; every arrival is still sent exactly once.
  TestServer server;
  const Workload workload = ClassifyWorkload();
  RunOptions options;
  options.duration = absl::Milliseconds(400);
  options.arrivals = ArrivalProcess::kConstant;
  LoadRunner runner({Endpoint{Connect(server.target), 0}}, 1, workload, options);
  const StepResult result = runner.Run(LoadStep{0, 5000});
  EXPECT_EQ(result.sent, 2000);
  EXPECT_EQ(result.ok, 2000);
  EXPECT_EQ(server.vision.classify_calls.load(), 2000);

  options.duration = absl::ZeroDuration();
  options.requests = 777;
  LoadRunner budget_runner({Endpoint{Connect(server.target), 0}}, 1, workload, options);
  EXPECT_EQ(budget_runner.Run(LoadStep{0, 5000}).ok, 777);
}

TEST(LoadRunnerTest, OpenLoopLatencyIncludesTimeWaitingToBeSent) {
  // One call at a time against a 20 ms server, offered 100 calls/s: each call waits for the one
  // before it, so latency from the intended send time grows far beyond the 20 ms service time.
  // A generator that timed from the actual send would report about 20 ms throughout.
  TestServer server;
  server.vision.classify_delay_ms = 20;
  const Workload workload = ClassifyWorkload();
  RunOptions options;
  options.duration = absl::Milliseconds(500);
  options.arrivals = ArrivalProcess::kConstant;
  options.max_outstanding = 1;
  LoadRunner runner({Endpoint{Connect(server.target), 0}}, 1, workload, options);
  const StepResult result = runner.Run(LoadStep{0, 100});
  ASSERT_GT(result.ok, 20);
  EXPECT_GE(result.latency.min(), 19'000'000);
  EXPECT_GT(result.latency.ValueAtPercentile(99), 150'000'000);
  EXPECT_GT(result.send_lag_max_ms, 100);
}

TEST(LoadRunnerTest, ErrorsAreCountedByStatusCode) {
  TestServer server;
  const auto workload = Workload::Create(LoadRpc::kSegment, RequestOptions{}, {{"a", "x"}});
  ASSERT_TRUE(workload.ok());
  RunOptions options;
  options.requests = 30;
  LoadRunner runner({Endpoint{Connect(server.target), 0}}, 1, *workload, options);
  const StepResult result = runner.Run(LoadStep{3, 0});
  EXPECT_EQ(result.ok, 0);
  EXPECT_EQ(result.failed, 30);
  EXPECT_EQ(result.errors.at("INVALID_ARGUMENT"), 30);
  EXPECT_EQ(result.error_text.at("INVALID_ARGUMENT"), "segment is broken here");
  EXPECT_EQ(result.latency.count(), 0);
  EXPECT_EQ(result.failed_per_target, std::vector<int64_t>{30});
}

TEST(LoadRunnerTest, CallsRotateOverTargets) {
  TestServer a, b;
  const auto workload = Workload::Create(LoadRpc::kGetModel, RequestOptions{"cls"}, {});
  ASSERT_TRUE(workload.ok());
  RunOptions options;
  options.requests = 100;
  LoadRunner runner({Endpoint{Connect(a.target, 1), 0}, Endpoint{Connect(b.target, 2), 1}}, 2,
                    *workload, options);
  const StepResult result = runner.Run(LoadStep{5, 0});
  EXPECT_EQ(result.ok, 100);
  EXPECT_EQ(a.vision.get_model_calls.load(), 50);
  EXPECT_EQ(b.vision.get_model_calls.load(), 50);
  EXPECT_EQ(result.ok_per_target, (std::vector<int64_t>{50, 50}));
}

TEST(LoadRunnerTest, InterruptStopsTheStepEarly) {
  TestServer server;
  const auto workload = Workload::Create(LoadRpc::kHealth, RequestOptions{}, {});
  ASSERT_TRUE(workload.ok());
  std::atomic<bool> interrupt{false};
  RunOptions options;
  options.duration = absl::Seconds(60);
  options.interrupt = &interrupt;
  LoadRunner runner({Endpoint{Connect(server.target), 0}}, 1, *workload, options);
  std::thread stopper([&interrupt] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    interrupt = true;
  });
  const auto start = std::chrono::steady_clock::now();
  const StepResult result = runner.Run(LoadStep{2, 0});
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(result.interrupted);
  EXPECT_GT(result.ok, 0);
}

TEST(WorkloadTest, ExtractsMetadataWithoutParsingTheRest) {
  pb::DetectResponse response;
  for (int i = 0; i < 50; ++i) {
    pb::Detection* detection = response.add_detections();
    detection->set_label("person");
    for (int j = 0; j < 100; ++j) detection->mutable_mask()->add_counts(j);
  }
  SetTiming(response.mutable_metadata());
  const std::string bytes = response.SerializeAsString();
  grpc::Slice slice(bytes);
  pb::ResponseMetadata metadata;
  ASSERT_TRUE(ExtractResponseMetadata(grpc::ByteBuffer(&slice, 1), &metadata));
  EXPECT_EQ(metadata.batch_size(), 2);
  EXPECT_EQ(metadata.timing().inference_us(), 300);

  pb::ModelInfo no_metadata;
  no_metadata.set_name("x");
  grpc::Slice other(no_metadata.SerializeAsString());
  EXPECT_FALSE(ExtractResponseMetadata(grpc::ByteBuffer(&other, 1), &metadata));
  grpc::Slice garbage(std::string("\xff\xff\xff", 3));
  EXPECT_FALSE(ExtractResponseMetadata(grpc::ByteBuffer(&garbage, 1), &metadata));
}

TEST(WorkloadTest, RejectsMissingInputs) {
  EXPECT_THAT(std::string(Workload::Create(LoadRpc::kClassify, {}, {}).status().message()),
              HasSubstr("--rpc classify: expected at least one image"));
  EXPECT_FALSE(Workload::Create(LoadRpc::kGetModel, {}, {}).ok());
  RequestOptions raw;
  raw.raw = true;
  EXPECT_THAT(
      std::string(
          Workload::Create(LoadRpc::kDetect, raw, {{"bad.jpg", "not a jpeg"}}).status().message()),
      HasSubstr("bad.jpg"));
}

TEST(PreflightTest, ChecksConnectivityAndModels) {
  TestServer server;
  const std::vector<std::string> targets = {server.target};
  const std::vector<std::shared_ptr<grpc::Channel>> channels = {Connect(server.target)};
  std::string model;
  EXPECT_TRUE(
      PreflightTargets(channels, targets, LoadRpc::kClassify, absl::Seconds(5), &model).ok());
  model = "";
  EXPECT_TRUE(
      PreflightTargets(channels, targets, LoadRpc::kGetModel, absl::Seconds(5), &model).ok());
  EXPECT_EQ(model, "cls");  // the first model listed
  model = "nope";
  const absl::Status unknown =
      PreflightTargets(channels, targets, LoadRpc::kClassify, absl::Seconds(5), &model);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.message()), HasSubstr("'nope'"));
  model = "";
  // No default detection model is listed.
  EXPECT_EQ(PreflightTargets(channels, targets, LoadRpc::kDetect, absl::Seconds(5), &model).code(),
            absl::StatusCode::kNotFound);
  model = "det";
  EXPECT_EQ(
      PreflightTargets(channels, targets, LoadRpc::kClassify, absl::Seconds(5), &model).code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.vision.get_model_calls.load(), 0);  // preflight never drives the load RPCs

  // A port nothing listens on (the server's, after shutdown).
  std::string dead_target;
  {
    TestServer dead;
    dead_target = dead.target;
  }
  const absl::Status unreachable = PreflightTargets({Connect(dead_target)}, {dead_target},
                                                    LoadRpc::kHealth, absl::Seconds(5), &model);
  EXPECT_EQ(unreachable.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(unreachable.message()), HasSubstr(dead_target));
}

}  // namespace
}  // namespace iis::client
