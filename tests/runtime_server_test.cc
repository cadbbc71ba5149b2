// End-to-end tests of build/bin/internimage-server with the real LibTorch runtime: one server
// process serving all three tasks (official T architectures, seeded random weights, no warm-up),
// real gRPC calls on loopback, metrics read from its /metrics endpoint.
//
// The front end's behaviour in detail (validation table, TLS, reflection, ...) is covered by
// server_test over a fake engine; this file checks what only the real runtime can show: answers of
// real models mapped to the original images, batching that really forms batches and equals
// unbatched runs, the queue limit, deadlines and cancellation in the queue, and the drain.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "internimage/serving/v1/vision.grpc.pb.h"
#include "tests/metrics_scrape.h"
#include "tests/testing/paths.h"
#include "tests/testing/process.h"

namespace iis {
namespace {

namespace pb = internimage::serving::v1;
using std::chrono::milliseconds;
using std::chrono::seconds;

const std::string kSkimage = testing_paths::SkimagePhoto("");

using testing_paths::ReadFileBytes;

// The configuration the suite's server runs: the three default architectures plus a
// classification model with a one-deep queue for the admission, deadline and cancellation tests.
constexpr char kConfig[] = R"pb(
  worker_threads: 2
  cpu_inference_threads: 2
  drain_grace_period_ms: 60000
  models {
    architecture: "internimage_t_1k_224"
    warmup_iterations: -1
    batching { max_batch_size: 8 max_queue_delay_us: 300000 max_queue_size: 64 }
  }
  models {
    architecture: "internimage_t_1k_224"
    name: "tiny_queue"
    random_seed: 1
    warmup_iterations: -1
    batching { max_batch_size: 1 max_queue_size: 1 }
  }
  models {
    architecture: "mask_rcnn_internimage_t_fpn_1x_coco"
    warmup_iterations: -1
    batching { max_batch_size: 2 max_queue_delay_us: 500000 }
  }
  models {
    architecture: "upernet_internimage_t_512_160k_ade20k"
    warmup_iterations: -1
    batching { max_batch_size: 2 }
  }
)pb";

class RuntimeServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/iis_runtime_server");
    std::system(("mkdir -p " + *dir_ + " && rm -f " + *dir_ + "/*.port").c_str());
    std::ofstream(*dir_ + "/server.pbtxt") << kConfig;
    server_ = new testing_process::Process(
        {testing_paths::BinaryDir() + "/bin/internimage-server",
         "--config=" + *dir_ + "/server.pbtxt", "--host=127.0.0.1", "--port=0", "--metrics-port=0",
         "--port-file=" + *dir_ + "/grpc.port", "--metrics-port-file=" + *dir_ + "/metrics.port"},
        *dir_ + "/server.log");
    port_ = testing_process::ReadPortFile(*dir_ + "/grpc.port", seconds(300), server_);
    metrics_port_ = testing_process::ReadPortFile(*dir_ + "/metrics.port", seconds(10), server_);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  void SetUp() override {
    ASSERT_GT(port_, 0) << "the server did not start; log:\n"
                        << ReadFileBytes(*dir_ + "/server.log");
    ASSERT_TRUE(server_->Running()) << ReadFileBytes(*dir_ + "/server.log");
  }

  static std::unique_ptr<pb::VisionService::Stub> Stub() {
    return pb::VisionService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                          grpc::InsecureChannelCredentials()));
  }

  static std::map<std::string, double> Metrics() {
    return ParseExposition(HttpGet(metrics_port_, "/metrics"));
  }

  static std::string* dir_;
  static testing_process::Process* server_;
  static int port_;
  static int metrics_port_;
};
std::string* RuntimeServerTest::dir_ = nullptr;
testing_process::Process* RuntimeServerTest::server_ = nullptr;
int RuntimeServerTest::port_ = -1;
int RuntimeServerTest::metrics_port_ = -1;

pb::Image Encoded(const std::string& bytes) {
  pb::Image image;
  image.set_encoded(bytes);
  return image;
}

pb::Image RawRgb(const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  pb::Image image;
  pb::RawTensor* t = image.mutable_tensor();
  t->set_format(pb::RawTensor::UINT8_HWC_RGB);
  t->add_shape(rgb.rows);
  t->add_shape(rgb.cols);
  t->add_shape(3);
  t->set_data(std::string(reinterpret_cast<const char*>(rgb.data), rgb.total() * 3));
  return image;
}

grpc::Status Classify(pb::VisionService::Stub& stub, const std::string& model,
                      const pb::Image& image, pb::ClassifyResponse* out,
                      milliseconds deadline = milliseconds(120000)) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  pb::ClassifyRequest req;
  req.set_model(model);
  *req.mutable_image() = image;
  req.set_top_k(1000);
  return stub.Classify(&ctx, req, out);
}

// Probability of every class, by id.
std::vector<float> Probabilities(const pb::ClassifyResponse& r) {
  std::vector<float> p(1000, -1.0f);
  for (const auto& c : r.classes()) p[c.class_id()] = c.score();
  return p;
}

TEST_F(RuntimeServerTest, ClassifyEncodedAndRawGiveTheSameAnswer) {
  auto stub = Stub();
  const std::string png = ReadFileBytes(kSkimage + "chelsea.png");
  pb::ClassifyResponse encoded, raw;
  ASSERT_TRUE(Classify(*stub, "", Encoded(png), &encoded).ok());
  const cv::Mat bgr = cv::imread(kSkimage + "chelsea.png", cv::IMREAD_COLOR);
  ASSERT_TRUE(Classify(*stub, "internimage_t_1k_224", RawRgb(bgr), &raw).ok());
  ASSERT_EQ(encoded.classes_size(), 1000);
  EXPECT_EQ(encoded.metadata().model(), "internimage_t_1k_224");
  EXPECT_GT(encoded.metadata().timing().inference_us(), 0);
  EXPECT_GE(encoded.metadata().timing().total_us(), encoded.metadata().timing().inference_us());
  EXPECT_FALSE(encoded.classes(0).label().empty());
  double sum = 0;
  for (const auto& c : encoded.classes()) sum += c.score();
  EXPECT_NEAR(sum, 1.0, 1e-3);
  // PNG is lossless: the decoded pixels and the raw pixels are the same image.
  const auto a = Probabilities(encoded), b = Probabilities(raw);
  for (int i = 0; i < 1000; ++i) ASSERT_NEAR(a[i], b[i], 1e-6) << i;
}

TEST_F(RuntimeServerTest, ConcurrentRequestsFormBatchesThatEqualSingleRuns) {
  const char* names[] = {"chelsea.png", "coffee.png",          "astronaut.png",
                         "rocket.jpg",  "motorcycle_left.png", "horse.png"};
  auto stub = Stub();
  std::vector<std::vector<float>> single;
  for (const char* n : names) {
    pb::ClassifyResponse r;
    ASSERT_TRUE(Classify(*stub, "", Encoded(ReadFileBytes(kSkimage + n)), &r).ok());
    EXPECT_EQ(r.metadata().batch_size(), 1);
    single.push_back(Probabilities(r));
  }
  const auto before = Metrics();
  std::vector<std::future<std::pair<grpc::Status, pb::ClassifyResponse>>> futures;
  for (const char* n : names) {
    futures.push_back(std::async(std::launch::async, [n] {
      auto s = Stub();
      pb::ClassifyResponse r;
      grpc::Status st = Classify(*s, "", Encoded(ReadFileBytes(kSkimage + n)), &r);
      return std::make_pair(st, r);
    }));
  }
  int max_batch = 0;
  for (size_t i = 0; i < futures.size(); ++i) {
    auto [status, r] = futures[i].get();
    ASSERT_TRUE(status.ok()) << status.error_message();
    max_batch = std::max(max_batch, r.metadata().batch_size());
    const auto p = Probabilities(r);
    for (int c = 0; c < 1000; ++c)
      ASSERT_NEAR(p[c], single[i][c], 1e-5) << names[i] << " class " << c;
  }
  EXPECT_GT(max_batch, 1);
  // The server's own batch-size histogram saw batches of more than one request.
  const auto after = Metrics();
  auto get = [](const std::map<std::string, double>& m, const char* which) {
    return SampleOrZero(
        m, std::string("iis_batch_size_") + which + "{model=\"internimage_t_1k_224\"}");
  };
  const double requests = get(after, "sum") - get(before, "sum");
  const double batches = get(after, "count") - get(before, "count");
  EXPECT_EQ(requests, 6);
  EXPECT_LT(batches, 6);
}

// Raw tensors of different sizes may share a batch: each still gets what it gets alone.
TEST_F(RuntimeServerTest, ClassifierTensorsOfMixedSizesEqualSingleRuns) {
  auto tensor = [](int height, int width, float seed) {
    pb::Image image;
    image.mutable_tensor()->set_format(pb::RawTensor::FLOAT32_CHW);
    for (int d : {3, height, width}) image.mutable_tensor()->add_shape(d);
    std::vector<float> values(3 * height * width);
    for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(seed + 0.01f * i);
    image.mutable_tensor()->set_data(
        std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
    return image;
  };
  const std::vector<pb::Image> images = {tensor(64, 64, 1), tensor(96, 80, 2), tensor(64, 64, 3),
                                         tensor(96, 80, 4), tensor(33, 47, 5)};
  auto stub = Stub();
  std::vector<std::vector<float>> single;
  for (const pb::Image& image : images) {
    pb::ClassifyResponse r;
    ASSERT_TRUE(Classify(*stub, "", image, &r).ok());
    single.push_back(Probabilities(r));
  }
  std::vector<std::future<std::pair<grpc::Status, pb::ClassifyResponse>>> futures;
  for (const pb::Image& image : images) {
    futures.push_back(std::async(std::launch::async, [&image] {
      auto s = Stub();
      pb::ClassifyResponse r;
      grpc::Status st = Classify(*s, "", image, &r);
      return std::make_pair(st, r);
    }));
  }
  for (size_t i = 0; i < futures.size(); ++i) {
    auto [status, r] = futures[i].get();
    ASSERT_TRUE(status.ok()) << status.error_message();
    const auto p = Probabilities(r);
    for (int c = 0; c < 1000; ++c) ASSERT_NEAR(p[c], single[i][c], 1e-5) << "image " << i;
  }
}

TEST_F(RuntimeServerTest, DetectMapsBoxesAndMasksToTheOriginalImage) {
  auto stub = Stub();
  const cv::Mat bgr = cv::imread(kSkimage + "coffee.png", cv::IMREAD_COLOR);  // 600x400
  std::vector<uchar> jpg;
  cv::imencode(".jpg", bgr, jpg);
  grpc::ClientContext ctx;
  pb::DetectRequest req;
  *req.mutable_image() = Encoded(std::string(jpg.begin(), jpg.end()));
  req.set_max_detections(4);
  pb::DetectResponse resp;
  grpc::Status st = stub->Detect(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.image_width(), 600);
  EXPECT_EQ(resp.image_height(), 400);
  EXPECT_LE(resp.detections_size(), 4);
  ASSERT_GT(resp.detections_size(), 0) << "random weights still give low-score boxes above 0.05";
  float previous = 2.0f;
  for (const auto& d : resp.detections()) {
    EXPECT_GT(d.score(), 0.05f);
    EXPECT_LE(d.score(), previous);
    previous = d.score();
    EXPECT_GE(d.box().x1(), 0);
    EXPECT_LE(d.box().x2(), 600);
    EXPECT_GE(d.box().y1(), 0);
    EXPECT_LE(d.box().y2(), 400);
    EXPECT_FALSE(d.label().empty());
    ASSERT_TRUE(d.has_mask());
    EXPECT_EQ(d.mask().width(), 600);
    EXPECT_EQ(d.mask().height(), 400);
    uint64_t total = 0;
    for (uint32_t c : d.mask().counts()) total += c;
    EXPECT_EQ(total, 600u * 400u);
  }
  // Without masks, with a threshold: same boxes above it, no masks.
  const float threshold = resp.detections(resp.detections_size() - 1).score();
  grpc::ClientContext ctx2;
  req.set_mask_encoding(pb::MASK_ENCODING_NONE);
  req.set_score_threshold(threshold);
  pb::DetectResponse boxes_only;
  ASSERT_TRUE(stub->Detect(&ctx2, req, &boxes_only).ok());
  EXPECT_EQ(boxes_only.detections_size(), resp.detections_size() - 1);
  for (int i = 0; i < boxes_only.detections_size(); ++i) {
    EXPECT_FALSE(boxes_only.detections(i).has_mask());
    EXPECT_EQ(boxes_only.detections(i).box().x1(), resp.detections(i).box().x1());
    EXPECT_EQ(boxes_only.detections(i).score(), resp.detections(i).score());
  }
}

TEST_F(RuntimeServerTest, DetectBatchOfTwoEqualsSingleRuns) {
  // Two images with the same padded network size: a batched forward must give their answers.
  const cv::Mat a = cv::imread(kSkimage + "motorcycle_left.png", cv::IMREAD_COLOR);
  const cv::Mat b = cv::imread(kSkimage + "motorcycle_right.png", cv::IMREAD_COLOR);
  auto run = [](const cv::Mat& img) {
    auto stub = Stub();
    grpc::ClientContext ctx;
    pb::DetectRequest req;
    *req.mutable_image() = RawRgb(img);
    req.set_mask_encoding(pb::MASK_ENCODING_NONE);
    pb::DetectResponse resp;
    grpc::Status st = stub->Detect(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  };
  const pb::DetectResponse sa = run(a), sb = run(b);
  auto fa = std::async(std::launch::async, run, a);
  auto fb = std::async(std::launch::async, run, b);
  const pb::DetectResponse ba = fa.get(), bb = fb.get();
  EXPECT_EQ(std::max(ba.metadata().batch_size(), bb.metadata().batch_size()), 2);
  for (auto [single, batched] : {std::make_pair(&sa, &ba), std::make_pair(&sb, &bb)}) {
    ASSERT_EQ(single->detections_size(), batched->detections_size());
    for (int i = 0; i < single->detections_size(); ++i) {
      EXPECT_NEAR(single->detections(i).score(), batched->detections(i).score(), 1e-4);
      EXPECT_NEAR(single->detections(i).box().x1(), batched->detections(i).box().x1(), 0.05);
      EXPECT_NEAR(single->detections(i).box().y2(), batched->detections(i).box().y2(), 0.05);
      EXPECT_EQ(single->detections(i).class_id(), batched->detections(i).class_id());
    }
  }
}

TEST_F(RuntimeServerTest, SegmentReturnsALabelMapOfTheOriginalSize) {
  auto stub = Stub();
  grpc::ClientContext ctx;
  pb::SegmentRequest req;
  *req.mutable_image() = Encoded(ReadFileBytes(kSkimage + "astronaut.png"));  // 512x512
  pb::SegmentResponse resp;
  grpc::Status st = stub->Segment(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.width(), 512);
  EXPECT_EQ(resp.height(), 512);
  const std::vector<uchar> png(resp.label_png().begin(), resp.label_png().end());
  const cv::Mat map = cv::imdecode(png, cv::IMREAD_UNCHANGED);
  ASSERT_EQ(map.type(), CV_8UC1);
  EXPECT_EQ(map.cols, 512);
  EXPECT_EQ(map.rows, 512);
  int64_t total = 0;
  for (const auto& c : resp.class_pixels()) {
    total += c.pixels();
    EXPECT_EQ(c.pixels(), cv::countNonZero(map == c.class_id())) << c.label();
    EXPECT_LT(c.class_id(), 150);
  }
  EXPECT_EQ(total, 512 * 512);
}

TEST_F(RuntimeServerTest, AFullQueueAnswersResourceExhaustedAtOnce) {
  // tiny_queue runs one request at a time and queues at most one more.
  const std::string png = ReadFileBytes(kSkimage + "chelsea.png");
  std::vector<std::future<grpc::Status>> futures;
  for (int i = 0; i < 8; ++i) {
    futures.push_back(std::async(std::launch::async, [&png] {
      auto s = Stub();
      pb::ClassifyResponse r;
      return Classify(*s, "tiny_queue", Encoded(png), &r);
    }));
  }
  int ok = 0, exhausted = 0;
  for (auto& f : futures) {
    const grpc::Status st = f.get();
    if (st.ok()) ++ok;
    if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++exhausted;
      EXPECT_NE(st.error_message().find("full"), std::string::npos) << st.error_message();
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(exhausted, 1);
  EXPECT_EQ(ok + exhausted, 8);
  // And it recovers.
  auto stub = Stub();
  pb::ClassifyResponse r;
  EXPECT_TRUE(Classify(*stub, "tiny_queue", Encoded(png), &r).ok());
}

TEST_F(RuntimeServerTest, ExpiredRequestsNeverRun) {
  const std::string png = ReadFileBytes(kSkimage + "chelsea.png");
  const auto before = Metrics();
  // A request occupies tiny_queue's single instance (a forward of tens of ms); the next one waits
  // behind it and its 15 ms deadline passes in the queue (or already in preprocessing).
  auto busy = std::async(std::launch::async, [&png] {
    auto s = Stub();
    pb::ClassifyResponse r;
    return Classify(*s, "tiny_queue", Encoded(png), &r);
  });
  std::this_thread::sleep_for(milliseconds(20));
  auto stub = Stub();
  pb::ClassifyResponse r;
  const grpc::Status expired = Classify(*stub, "tiny_queue", Encoded(png), &r, milliseconds(15));
  EXPECT_EQ(expired.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(busy.get().ok());
  std::this_thread::sleep_for(milliseconds(300));  // the server drops it when the instance frees
  const auto after = Metrics();
  const std::string forwards = "iis_batch_size_count{model=\"tiny_queue\"}";
  EXPECT_EQ(SampleOrZero(after, forwards) - SampleOrZero(before, forwards), 1)
      << "the expired request must not have been run";
  const std::string dropped =
      "iis_requests_total{code=\"DEADLINE_EXCEEDED\",method=\"Classify\",model=\"tiny_queue\"}";
  EXPECT_EQ(SampleOrZero(after, dropped) - SampleOrZero(before, dropped), 1);
}

TEST_F(RuntimeServerTest, CancelledRequestsNeverRun) {
  // A detection (seconds on this CPU) occupies the model's instance; a second one waits in the
  // queue behind it, the client cancels it, and the server drops it instead of running it.
  const auto before = Metrics();
  const cv::Mat bgr = cv::imread(kSkimage + "coffee.png", cv::IMREAD_COLOR);
  auto detect = [&bgr](grpc::ClientContext* ctx) {
    auto stub = Stub();
    pb::DetectRequest req;
    *req.mutable_image() = RawRgb(bgr);
    req.set_mask_encoding(pb::MASK_ENCODING_NONE);
    pb::DetectResponse resp;
    return stub->Detect(ctx, req, &resp);
  };
  grpc::ClientContext busy_ctx;
  auto busy = std::async(std::launch::async, detect, &busy_ctx);
  std::this_thread::sleep_for(milliseconds(300));
  grpc::ClientContext ctx;
  std::thread canceller([&ctx] {
    std::this_thread::sleep_for(milliseconds(200));
    ctx.TryCancel();
  });
  const grpc::Status st = detect(&ctx);
  canceller.join();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(busy.get().ok());
  std::this_thread::sleep_for(milliseconds(300));
  const auto after = Metrics();
  const std::string forwards =
      "iis_batch_size_count{model=\"mask_rcnn_internimage_t_fpn_1x_coco\"}";
  EXPECT_EQ(SampleOrZero(after, forwards) - SampleOrZero(before, forwards), 1)
      << "the cancelled request must not have been run";
}

TEST_F(RuntimeServerTest, ALoneRequestDoesNotWaitForCompany) {
  // internimage_t_1k_224 waits up to 300 ms for company, but only while more requests are on
  // their way: a single request is dispatched at once.
  auto stub = Stub();
  pb::ClassifyResponse r;
  ASSERT_TRUE(Classify(*stub, "", Encoded(ReadFileBytes(kSkimage + "chelsea.png")), &r).ok());
  EXPECT_LT(r.metadata().timing().queue_us(), 100000) << r.metadata().DebugString();
}

TEST_F(RuntimeServerTest, BadImagesAreRejectedAndTheServerKeepsServing) {
  auto stub = Stub();
  pb::ClassifyResponse r;
  std::string png = ReadFileBytes(kSkimage + "chelsea.png");
  const grpc::Status truncated = Classify(*stub, "", Encoded(png.substr(0, png.size() / 3)), &r);
  EXPECT_EQ(truncated.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << truncated.error_message();
  std::string corrupt = png;
  for (size_t i = 200; i < corrupt.size(); i += 7)
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  const grpc::Status bad = Classify(*stub, "", Encoded(corrupt), &r);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad.error_message();
  pb::Image tensor;
  tensor.mutable_tensor()->set_format(pb::RawTensor::FLOAT32_CHW);
  for (int d : {3, 100, 100}) tensor.mutable_tensor()->add_shape(d);
  tensor.mutable_tensor()->set_data(std::string(3 * 100 * 100 * 4, '\0'));
  std::string nan_data(3 * 100 * 100 * 4, '\0');
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan_data.data() + 4 * 5000, &nan, 4);
  pb::Image with_nan = tensor;
  with_nan.mutable_tensor()->set_data(nan_data);
  const grpc::Status not_finite = Classify(*stub, "", with_nan, &r);
  EXPECT_EQ(not_finite.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(not_finite.error_message().find("non-finite"), std::string::npos)
      << not_finite.error_message();
  // The classifier takes raw tensors of any size (global pooling), not only 224 x 224.
  const grpc::Status any_size = Classify(*stub, "", tensor, &r);
  EXPECT_TRUE(any_size.ok()) << any_size.error_message();
  EXPECT_EQ(r.classes_size(), 1000);
  EXPECT_EQ(Classify(*stub, "no_such_model", Encoded(png), &r).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Classify(*stub, "", Encoded(png), &r).ok());
}

TEST_F(RuntimeServerTest, ListModelsReportsRandomWeightsAndBatching) {
  auto stub = Stub();
  grpc::ClientContext ctx;
  pb::ListModelsResponse resp;
  ASSERT_TRUE(stub->ListModels(&ctx, pb::ListModelsRequest(), &resp).ok());
  ASSERT_EQ(resp.models_size(), 4);
  for (const auto& m : resp.models()) {
    EXPECT_FALSE(m.real_weights()) << m.name();
    EXPECT_NE(m.weights_source().find("random"), std::string::npos);
    EXPECT_EQ(m.devices(0), "cpu");
    EXPECT_GT(m.class_names_size(), 0);
    if (m.name() == "internimage_t_1k_224") {
      EXPECT_EQ(m.batching().max_batch_size(), 8);
      EXPECT_EQ(m.input_width(), 224);
      EXPECT_TRUE(m.is_default());
    }
  }
}

// Runs last (gtest runs tests in declaration order within a suite): stops the shared server.
TEST_F(RuntimeServerTest, ZzDrainFinishesInFlightRequestsAndExitsZero) {
  const std::string png = ReadFileBytes(kSkimage + "chelsea.png");
  std::vector<std::future<grpc::Status>> in_flight;
  for (int i = 0; i < 3; ++i) {
    in_flight.push_back(std::async(std::launch::async, [&png] {
      auto s = Stub();
      pb::ClassifyResponse r;
      return Classify(*s, "", Encoded(png), &r);
    }));
  }
  std::this_thread::sleep_for(milliseconds(20));  // accepted: preprocessing, queued or running
  server_->Signal(SIGTERM);
  for (auto& f : in_flight) {
    const grpc::Status st = f.get();
    EXPECT_TRUE(st.ok()) << st.error_code() << " " << st.error_message();
  }
  EXPECT_EQ(server_->Wait(milliseconds(60000)), 0) << ReadFileBytes(*dir_ + "/server.log");
}

}  // namespace
}  // namespace iis
