// Integration tests of the gRPC front end: a real VisionServer on a loopback port with the
// FakeEngine behind it, called through real gRPC stubs; and the fake_vision_server process
// (RunServer: signals, drain, exit codes, port files).
#include "server/frontend/server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "internimage/serving/v1/vision.grpc.pb.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
#include "server/metrics/metrics.h"
#include "tests/fake_engine.h"
#include "tests/metrics_scrape.h"
#include "tests/testing/process.h"

namespace iis {
namespace {

namespace pb = ::internimage::serving::v1;
namespace health = ::grpc::health::v1;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kRpcTimeout = std::chrono::seconds(20);

// ---- images ----------------------------------------------------------------------------------

// An RGB image (OpenCV stores it in BGR order for encoding).
struct RgbImage {
  cv::Mat rgb;  // CV_8UC3, RGB
};

RgbImage SolidImage(int width, int height, cv::Vec3b rgb) {
  return {cv::Mat(height, width, CV_8UC3, cv::Scalar(rgb[0], rgb[1], rgb[2]))};
}

// Black image with a white rectangle [x1, x2) x [y1, y2).
RgbImage BrightRectImage(int width, int height, cv::Rect rect) {
  RgbImage image{cv::Mat::zeros(height, width, CV_8UC3)};
  image.rgb(rect).setTo(cv::Scalar(255, 255, 255));
  return image;
}

std::string Encode(const RgbImage& image, const std::string& ext, std::vector<int> params = {}) {
  cv::Mat bgr;
  cv::cvtColor(image.rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> bytes;
  EXPECT_TRUE(cv::imencode(ext, bgr, bytes, params));
  return std::string(bytes.begin(), bytes.end());
}

pb::Image EncodedImage(const std::string& bytes) {
  pb::Image image;
  image.set_encoded(bytes);
  return image;
}

pb::Image Rgb8Tensor(const RgbImage& image) {
  pb::Image out;
  pb::RawTensor* tensor = out.mutable_tensor();
  tensor->set_format(pb::RawTensor::UINT8_HWC_RGB);
  tensor->add_shape(image.rgb.rows);
  tensor->add_shape(image.rgb.cols);
  tensor->add_shape(3);
  const cv::Mat continuous = image.rgb.clone();
  tensor->set_data(
      std::string(reinterpret_cast<const char*>(continuous.data), continuous.total() * 3));
  return out;
}

// The normalised network input of `image`: (pixel / 255 - mean) / std, CHW float32.
pb::Image Float32ChwTensor(const RgbImage& image) {
  const float mean[3] = {0.485f, 0.456f, 0.406f};
  const float stdev[3] = {0.229f, 0.224f, 0.225f};
  const int h = image.rgb.rows, w = image.rgb.cols;
  std::vector<float> data(3 * h * w);
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        data[(c * h + y) * w + x] =
            (image.rgb.at<cv::Vec3b>(y, x)[c] / 255.0f - mean[c]) / stdev[c];
      }
    }
  }
  pb::Image out;
  pb::RawTensor* tensor = out.mutable_tensor();
  tensor->set_format(pb::RawTensor::FLOAT32_CHW);
  tensor->add_shape(3);
  tensor->add_shape(h);
  tensor->add_shape(w);
  tensor->set_data(std::string(reinterpret_cast<const char*>(data.data()), data.size() * 4));
  return out;
}

// Every way a client may send `image`: the four file formats and the uint8 raw tensor. `exact`
// is false for the lossy encodings.
struct Input {
  std::string name;
  pb::Image image;
  bool exact;
};
std::vector<Input> AllInputs(const RgbImage& image) {
  return {
      {"jpeg", EncodedImage(Encode(image, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95})), false},
      {"png", EncodedImage(Encode(image, ".png")), true},
      {"webp", EncodedImage(Encode(image, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101})), true},
      {"bmp", EncodedImage(Encode(image, ".bmp")), true},
      {"uint8_hwc", Rgb8Tensor(image), true},
  };
}

// A PNG whose IHDR declares width x height (CRC correct, no real pixel data).
std::string CraftedPng(uint32_t width, uint32_t height) {
  // Take a real 1x1 PNG and rewrite its IHDR size and CRC.
  std::string png = Encode(SolidImage(1, 1, {1, 2, 3}), ".png");
  auto put32 = [&png](size_t pos, uint32_t v) {
    for (int i = 0; i < 4; ++i) png[pos + i] = static_cast<char>((v >> (24 - 8 * i)) & 0xFF);
  };
  put32(16, width);
  put32(20, height);
  // CRC-32 of "IHDR" + 13 data bytes, bitwise (independent of the server's table version).
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 12; i < 29; ++i) {
    crc ^= static_cast<uint8_t>(png[i]);
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  put32(29, crc ^ 0xFFFFFFFFu);
  return png;
}

// Decodes a COCO uncompressed RLE into a 0/1 matrix.
cv::Mat DecodeRle(const pb::Rle& rle) {
  cv::Mat mask = cv::Mat::zeros(rle.height(), rle.width(), CV_8UC1);
  int64_t index = 0;
  bool value = false;
  for (uint32_t run : rle.counts()) {
    for (uint32_t i = 0; i < run; ++i, ++index) {
      if (value) mask.at<uchar>(index % rle.height(), index / rle.height()) = 1;
    }
    value = !value;
  }
  EXPECT_EQ(index, int64_t{rle.height()} * rle.width());
  return mask;
}

// ---- metrics text ----------------------------------------------------------------------------

std::string RequestsKey(const std::string& model, const std::string& method,
                        const std::string& code) {
  return absl::StrCat("iis_requests_total{code=\"", code, "\",method=\"", method, "\",model=\"",
                      model, "\"}");
}

// ---- the server under test -------------------------------------------------------------------

std::unique_ptr<grpc::ClientContext> Context(
    std::chrono::system_clock::duration timeout = kRpcTimeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  return context;
}

// A VisionServer on 127.0.0.1:0 with its own metrics (served on a free port) and, unless told
// otherwise, a FakeEngine attached.
class TestServer {
 public:
  explicit TestServer(FakeEngineOptions engine_options = {}, ServerOptions options = {},
                      bool attach = true) {
    Metrics::Options metrics_options;
    metrics_options.port = 0;
    metrics_options.bind_address = "127.0.0.1";
    metrics_ = *Metrics::Create(metrics_options);
    options.listen_address = "127.0.0.1:0";
    absl::StatusOr<std::unique_ptr<VisionServer>> server =
        VisionServer::Create(options, metrics_.get());
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    engine_options.metrics = metrics_.get();
    engine_options_ = engine_options;
    if (attach) Attach();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = pb::VisionService::NewStub(channel_);
    health_ = health::Health::NewStub(channel_);
  }

  void Attach() {
    auto engine = std::make_unique<FakeEngine>(engine_options_);
    engine_ = engine.get();
    ASSERT_TRUE(server_->AttachEngine(std::move(engine)).ok());
  }

  VisionServer& server() { return *server_; }
  FakeEngine& engine() { return *engine_; }
  Metrics& metrics() { return *metrics_; }
  pb::VisionService::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

  health::HealthCheckResponse::ServingStatus Health(const std::string& service) {
    health::HealthCheckRequest request;
    request.set_service(service);
    health::HealthCheckResponse response;
    grpc::Status status = health_->Check(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  }

  std::map<std::string, double> Scrape() {
    return ParseExposition(HttpGet(metrics_->port(), "/metrics"));
  }

  // Polls the metrics endpoint until `key` reaches `value`; returns the last value seen.
  double WaitForSample(const std::string& key, double value) {
    double seen = 0;
    for (int i = 0; i < 500; ++i) {
      seen = SampleOrZero(Scrape(), key);
      if (seen == value) break;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return seen;
  }

 private:
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<VisionServer> server_;
  FakeEngineOptions engine_options_;
  FakeEngine* engine_ = nullptr;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::VisionService::Stub> stub_;
  std::unique_ptr<health::Health::Stub> health_;
};

pb::ClassifyRequest ClassifyRequestFor(const pb::Image& image, const std::string& model = "",
                                       int top_k = 0) {
  pb::ClassifyRequest request;
  request.set_model(model);
  *request.mutable_image() = image;
  request.set_top_k(top_k);
  return request;
}

// An asynchronous Classify whose outcome the test can wait for.
struct PendingCall {
  grpc::ClientContext context;
  pb::ClassifyResponse response;
  absl::Notification done;
  grpc::Status status;
};
std::unique_ptr<PendingCall> StartClassify(pb::VisionService::Stub& stub,
                                           const pb::ClassifyRequest& request) {
  auto call = std::make_unique<PendingCall>();
  call->context.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
  PendingCall* raw = call.get();
  stub.async()->Classify(&raw->context, &request, &raw->response, [raw](grpc::Status status) {
    raw->status = std::move(status);
    raw->done.Notify();
  });
  return call;
}

// ---- answers ---------------------------------------------------------------------------------

TEST(ServerTest, ClassifyAnswersFromTheImageForEveryInputKind) {
  TestServer server;
  const RgbImage image = SolidImage(40, 30, {200, 50, 10});
  std::vector<Input> inputs = AllInputs(image);
  inputs.push_back({"float32_chw", Float32ChwTensor(SolidImage(64, 64, {200, 50, 10})), false});
  // Classifiers take raw tensors of any size, not only their trained input size.
  inputs.push_back(
      {"float32_chw_any_size", Float32ChwTensor(SolidImage(17, 33, {200, 50, 10})), false});
  for (const Input& input : inputs) {
    SCOPED_TRACE(input.name);
    pb::ClassifyResponse response;
    grpc::Status status =
        server.stub().Classify(Context().get(), ClassifyRequestFor(input.image), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.classes_size(), 3);  // top_k 0 means 5, capped at the 3 classes
    EXPECT_EQ(response.classes(0).label(), "red");
    EXPECT_EQ(response.classes(0).class_id(), 0);
    EXPECT_EQ(response.classes(1).label(), "green");
    EXPECT_EQ(response.classes(2).label(), "blue");
    const double tolerance = input.exact ? 1e-5 : 0.02;
    EXPECT_NEAR(response.classes(0).score(), 200.0 / 260, tolerance);
    EXPECT_NEAR(response.classes(1).score(), 50.0 / 260, tolerance);
    EXPECT_NEAR(response.classes(2).score(), 10.0 / 260, tolerance);
    EXPECT_EQ(response.metadata().model(), "fake_classifier");
    EXPECT_EQ(response.metadata().model_version(), "1");
    EXPECT_EQ(response.metadata().batch_size(), 1);
    EXPECT_GT(response.metadata().timing().total_us(), 0);
    EXPECT_GE(response.metadata().timing().total_us(),
              response.metadata().timing().preprocess_us());
  }

  pb::ClassifyResponse top2;
  ASSERT_TRUE(server.stub()
                  .Classify(Context().get(),
                            ClassifyRequestFor(inputs[1].image, "fake_classifier_b", 2), &top2)
                  .ok());
  EXPECT_EQ(top2.classes_size(), 2);
  EXPECT_EQ(top2.metadata().model(), "fake_classifier_b");
  EXPECT_EQ(top2.metadata().model_version(), "2");
}

TEST(ServerTest, DetectAnswersInOriginalImageCoordinates) {
  TestServer server;
  const cv::Rect rect(50, 20, 40, 40);  // pixels [50, 90) x [20, 60)
  const RgbImage image = BrightRectImage(200, 120, rect);
  for (const Input& input : AllInputs(image)) {
    SCOPED_TRACE(input.name);
    pb::DetectRequest request;
    *request.mutable_image() = input.image;
    pb::DetectResponse response;
    grpc::Status status = server.stub().Detect(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.image_width(), 200);
    EXPECT_EQ(response.image_height(), 120);
    EXPECT_EQ(response.metadata().model(), "fake_detector");
    ASSERT_EQ(response.detections_size(), 3);
    const pb::Detection& bright = response.detections(0);
    EXPECT_EQ(bright.label(), "bright");
    EXPECT_FLOAT_EQ(bright.score(), 0.9f);
    const float tolerance = input.exact ? 0.0f : 2.0f;
    EXPECT_NEAR(bright.box().x1(), 50, tolerance);
    EXPECT_NEAR(bright.box().y1(), 20, tolerance);
    EXPECT_NEAR(bright.box().x2(), 90, tolerance);
    EXPECT_NEAR(bright.box().y2(), 60, tolerance);
    ASSERT_TRUE(bright.has_mask());
    EXPECT_EQ(bright.mask().width(), 200);
    EXPECT_EQ(bright.mask().height(), 120);
    if (input.exact) {
      cv::Mat expected = cv::Mat::zeros(120, 200, CV_8UC1);
      expected(rect).setTo(1);
      EXPECT_EQ(cv::countNonZero(DecodeRle(bright.mask()) != expected), 0);
    }
    const pb::Detection& whole = response.detections(1);
    EXPECT_EQ(whole.label(), "image");
    EXPECT_EQ(whole.box().x2(), 200);
    EXPECT_EQ(whole.box().y2(), 120);
    EXPECT_EQ(cv::countNonZero(DecodeRle(whole.mask())), 200 * 120);
    EXPECT_EQ(response.detections(2).label(), "centre");
    EXPECT_EQ(response.detections(2).box().x1(), 50);
    EXPECT_EQ(response.detections(2).box().y2(), 90);
  }

  // Options: threshold, limit, no masks; and a float32 tensor of any size.
  pb::DetectRequest request;
  *request.mutable_image() = Float32ChwTensor(BrightRectImage(50, 30, cv::Rect(5, 5, 10, 10)));
  request.set_score_threshold(0.3f);
  request.set_mask_encoding(pb::MASK_ENCODING_NONE);
  pb::DetectResponse response;
  ASSERT_TRUE(server.stub().Detect(Context().get(), request, &response).ok());
  EXPECT_EQ(response.image_width(), 50);
  EXPECT_EQ(response.image_height(), 30);
  ASSERT_EQ(response.detections_size(), 2);  // 0.9 and 0.5 are above 0.3, 0.2 is not
  EXPECT_FALSE(response.detections(0).has_mask());
  EXPECT_EQ(response.detections(0).box().x1(), 5);
  request.set_max_detections(1);
  ASSERT_TRUE(server.stub().Detect(Context().get(), request, &response).ok());
  EXPECT_EQ(response.detections_size(), 1);
}

TEST(ServerTest, SegmentAnswersALabelMapOfTheOriginalSize) {
  TestServer server;
  // Vertical stripes of grey 10, 80, 150, 220 (classes 0..3), 10, 20, 30 and 40 columns wide.
  RgbImage image{cv::Mat(25, 100, CV_8UC3)};
  const int widths[] = {10, 20, 30, 40};
  const int greys[] = {10, 80, 150, 220};
  for (int i = 0, x = 0; i < 4; x += widths[i], ++i) {
    image.rgb(cv::Rect(x, 0, widths[i], 25)).setTo(cv::Scalar(greys[i], greys[i], greys[i]));
  }
  std::vector<Input> inputs = AllInputs(image);
  inputs.push_back({"float32_chw", Float32ChwTensor(image), true});
  for (const Input& input : inputs) {
    SCOPED_TRACE(input.name);
    pb::SegmentRequest request;
    *request.mutable_image() = input.image;
    pb::SegmentResponse response;
    grpc::Status status = server.stub().Segment(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.width(), 100);
    EXPECT_EQ(response.height(), 25);
    EXPECT_EQ(response.metadata().model(), "fake_segmenter");
    const cv::Mat labels = cv::imdecode(cv::Mat(1, response.label_png().size(), CV_8UC1,
                                                const_cast<char*>(response.label_png().data())),
                                        cv::IMREAD_UNCHANGED);
    ASSERT_EQ(labels.type(), CV_8UC1);
    ASSERT_EQ(labels.cols, 100);
    ASSERT_EQ(labels.rows, 25);
    if (!input.exact) continue;
    ASSERT_EQ(response.class_pixels_size(), 4);
    for (int i = 0; i < 4; ++i) {  // most pixels first
      EXPECT_EQ(response.class_pixels(i).class_id(), 3 - i);
      EXPECT_EQ(response.class_pixels(i).pixels(), widths[3 - i] * 25);
    }
    EXPECT_EQ(response.class_pixels(0).label(), "bright");
    EXPECT_EQ(labels.at<uchar>(0, 0), 0);
    EXPECT_EQ(labels.at<uchar>(24, 99), 3);
    EXPECT_EQ(labels.at<uchar>(12, 35), 2);
  }
  pb::SegmentRequest counts_only;
  *counts_only.mutable_image() = Rgb8Tensor(image);
  counts_only.set_counts_only(true);
  pb::SegmentResponse response;
  ASSERT_TRUE(server.stub().Segment(Context().get(), counts_only, &response).ok());
  EXPECT_TRUE(response.label_png().empty());
  EXPECT_EQ(response.class_pixels_size(), 4);
}

TEST(ServerTest, ListModelsAndGetModelMapTheMetadata) {
  TestServer server;
  pb::ListModelsResponse list;
  ASSERT_TRUE(server.stub().ListModels(Context().get(), {}, &list).ok());
  ASSERT_EQ(list.models_size(), 4);
  std::vector<std::string> names;
  for (const pb::ModelInfo& info : list.models()) names.push_back(info.name());
  EXPECT_THAT(names, ::testing::ElementsAre("fake_classifier", "fake_classifier_b", "fake_detector",
                                            "fake_segmenter"));
  pb::GetModelRequest request;
  request.set_name("fake_detector");
  pb::ModelInfo info;
  ASSERT_TRUE(server.stub().GetModel(Context().get(), request, &info).ok());
  EXPECT_EQ(info.task(), pb::TASK_DETECTION);
  EXPECT_TRUE(info.is_default());
  EXPECT_EQ(info.version(), "1");
  EXPECT_EQ(info.input_width(), 1333);
  EXPECT_EQ(info.input_height(), 800);
  EXPECT_THAT(info.class_names(), ::testing::ElementsAre("bright", "image", "centre"));
  EXPECT_THAT(info.devices(), ::testing::ElementsAre("cpu"));
  EXPECT_EQ(info.precision(), "float32");
  EXPECT_EQ(info.batching().max_batch_size(), 1);
  EXPECT_EQ(info.batching().max_queue_size(), 16);
  EXPECT_FALSE(info.real_weights());
  EXPECT_EQ(info.weights_source(), "fake");
  request.set_name("fake_classifier_b");
  ASSERT_TRUE(server.stub().GetModel(Context().get(), request, &info).ok());
  EXPECT_EQ(info.task(), pb::TASK_CLASSIFICATION);
  EXPECT_FALSE(info.is_default());
}

// ---- bad input -------------------------------------------------------------------------------

TEST(ServerTest, BadInputsGetAClearStatusAndTheServerKeepsServing) {
  TestServer server;
  const RgbImage image = SolidImage(40, 30, {9, 99, 199});
  const std::string jpeg = Encode(image, ".jpg");
  const std::string png = Encode(image, ".png");
  std::string corrupt_jpeg = jpeg;
  // The byte after the first segment (APP0) should start the next marker.
  corrupt_jpeg[4 + ((static_cast<uint8_t>(jpeg[4]) << 8) | static_cast<uint8_t>(jpeg[5]))] = 0x12;
  std::string corrupt_png = png;
  corrupt_png[18] ^= 0x40;  // width changes, IHDR CRC no longer matches
  pb::Image short_tensor = Rgb8Tensor(SolidImage(10, 10, {1, 2, 3}));
  short_tensor.mutable_tensor()->mutable_data()->pop_back();
  pb::Image flat_tensor = Rgb8Tensor(SolidImage(10, 10, {1, 2, 3}));
  flat_tensor.mutable_tensor()->mutable_shape()->RemoveLast();
  pb::Image negative_tensor = Rgb8Tensor(SolidImage(10, 10, {1, 2, 3}));
  negative_tensor.mutable_tensor()->set_shape(0, -10);
  pb::Image huge_tensor = Rgb8Tensor(SolidImage(10, 10, {1, 2, 3}));
  huge_tensor.mutable_tensor()->set_shape(0, int64_t{1} << 40);
  huge_tensor.mutable_tensor()->set_shape(1, int64_t{1} << 40);
  pb::Image many_dims = Rgb8Tensor(SolidImage(10, 10, {1, 2, 3}));
  for (int i = 0; i < 100000; ++i) many_dims.mutable_tensor()->add_shape(1);
  pb::Image unspecified_tensor = Rgb8Tensor(SolidImage(10, 10, {1, 2, 3}));
  unspecified_tensor.mutable_tensor()->set_format(pb::RawTensor::FORMAT_UNSPECIFIED);
  pb::Image unknown_format = unspecified_tensor;
  unknown_format.mutable_tensor()->set_format(static_cast<pb::RawTensor::Format>(7));

  auto classify = [&](pb::ClassifyRequest request) {
    pb::ClassifyResponse response;
    return server.stub().Classify(Context().get(), request, &response);
  };
  auto classify_image = [&](pb::Image image) { return classify(ClassifyRequestFor(image)); };
  auto detect = [&](std::function<void(pb::DetectRequest&)> edit) {
    pb::DetectRequest request;
    *request.mutable_image() = EncodedImage(png);
    edit(request);
    pb::DetectResponse response;
    return server.stub().Detect(Context().get(), request, &response);
  };
  auto segment = [&](std::string model) {
    pb::SegmentRequest request;
    request.set_model(model);
    *request.mutable_image() = EncodedImage(png);
    pb::SegmentResponse response;
    return server.stub().Segment(Context().get(), request, &response);
  };
  auto get_model = [&](std::string name) {
    pb::GetModelRequest request;
    request.set_name(name);
    pb::ModelInfo info;
    return server.stub().GetModel(Context().get(), request, &info);
  };

  struct Case {
    std::string name;
    std::function<grpc::Status()> call;
    grpc::StatusCode code;
    std::string fragment;
  };
  using C = grpc::StatusCode;
  const std::vector<Case> cases = {
      {"no image", [&] { return classify_image(pb::Image()); }, C::INVALID_ARGUMENT,
       "image is required: set image.encoded or image.tensor"},
      {"empty image", [&] { return classify_image(EncodedImage("")); }, C::INVALID_ARGUMENT,
       "image.encoded is empty"},
      {"not an image", [&] { return classify_image(EncodedImage("hello, world")); },
       C::INVALID_ARGUMENT, "not a JPEG, PNG, WebP or BMP file"},
      {"truncated jpeg",
       [&] { return classify_image(EncodedImage(jpeg.substr(0, jpeg.size() / 2))); },
       C::INVALID_ARGUMENT, "image.encoded: JPEG is truncated"},
      {"corrupt jpeg", [&] { return classify_image(EncodedImage(corrupt_jpeg)); },
       C::INVALID_ARGUMENT, "image.encoded: JPEG is corrupt"},
      {"truncated png", [&] { return classify_image(EncodedImage(png.substr(0, png.size() - 5))); },
       C::INVALID_ARGUMENT, "image.encoded: PNG is truncated"},
      {"corrupt png", [&] { return classify_image(EncodedImage(corrupt_png)); },
       C::INVALID_ARGUMENT, "IHDR CRC mismatch"},
      {"decompression bomb",
       [&] { return classify_image(EncodedImage(CraftedPng(100000, 100000))); },
       C::INVALID_ARGUMENT, "image is 100000x100000 = 10000000000 pixels, the limit is 40000000"},
      {"too long a side", [&] { return classify_image(EncodedImage(CraftedPng(20000, 10))); },
       C::INVALID_ARGUMENT, "image is 20000x10 pixels, the longest side allowed is 16384"},
      {"tensor byte length", [&] { return classify_image(short_tensor); }, C::INVALID_ARGUMENT,
       "image.tensor.data has 299 bytes, shape [10, 10, 3] of uint8 needs 300"},
      {"tensor shape rank", [&] { return classify_image(flat_tensor); }, C::INVALID_ARGUMENT,
       "image.tensor.shape must be [height, width, 3] for UINT8_HWC_RGB, got [10, 10]"},
      {"tensor negative shape", [&] { return classify_image(negative_tensor); },
       C::INVALID_ARGUMENT, "image.tensor.shape must be positive, got [-10, 10, 3]"},
      {"tensor of 100003 dimensions", [&] { return classify_image(many_dims); },
       C::INVALID_ARGUMENT, "got [10, 10, 3, 1, 1, 1, 1, 1, ...] (100003 dimensions)"},
      {"tensor huge shape", [&] { return classify_image(huge_tensor); }, C::INVALID_ARGUMENT,
       "more than 2^63 pixels"},
      {"tensor format unspecified", [&] { return classify_image(unspecified_tensor); },
       C::INVALID_ARGUMENT,
       "image.tensor.format must be UINT8_HWC_RGB or FLOAT32_CHW, got FORMAT_UNSPECIFIED"},
      {"tensor format unknown", [&] { return classify_image(unknown_format); }, C::INVALID_ARGUMENT,
       "image.tensor.format must be UINT8_HWC_RGB or FLOAT32_CHW, got 7"},
      {"top_k negative", [&] { return classify(ClassifyRequestFor(EncodedImage(png), "", -1)); },
       C::INVALID_ARGUMENT, "top_k must be in [0, 3] (0 means 5), got -1"},
      {"top_k too large", [&] { return classify(ClassifyRequestFor(EncodedImage(png), "", 4)); },
       C::INVALID_ARGUMENT, "top_k must be in [0, 3] (0 means 5), got 4"},
      {"threshold 1", [&] { return detect([](auto& r) { r.set_score_threshold(1.0f); }); },
       C::INVALID_ARGUMENT, "score_threshold must be in [0, 1), got 1"},
      {"threshold negative", [&] { return detect([](auto& r) { r.set_score_threshold(-0.5f); }); },
       C::INVALID_ARGUMENT, "score_threshold must be in [0, 1), got -0.5"},
      {"threshold NaN", [&] { return detect([](auto& r) { r.set_score_threshold(NAN); }); },
       C::INVALID_ARGUMENT, "score_threshold must be in [0, 1), got nan"},
      {"max_detections", [&] { return detect([](auto& r) { r.set_max_detections(-1); }); },
       C::INVALID_ARGUMENT, "max_detections must be >= 0, got -1"},
      {"mask encoding",
       [&] {
         return detect([](auto& r) { r.set_mask_encoding(static_cast<pb::MaskEncoding>(9)); });
       },
       C::INVALID_ARGUMENT,
       "mask_encoding must be MASK_ENCODING_UNSPECIFIED, MASK_ENCODING_RLE "
       "or MASK_ENCODING_NONE, got 9"},
      {"unknown model", [&] { return classify(ClassifyRequestFor(EncodedImage(png), "nope")); },
       C::NOT_FOUND,
       "model \"nope\" is not served; served models: fake_classifier, "
       "fake_classifier_b, fake_detector, fake_segmenter"},
      {"invalid model name", [&] { return classify(ClassifyRequestFor(EncodedImage(png), "a/b")); },
       C::INVALID_ARGUMENT, "model must be 1 to 128 characters of [A-Za-z0-9._-], got \"a/b\""},
      {"wrong task",
       [&] { return classify(ClassifyRequestFor(EncodedImage(png), "fake_detector")); },
       C::INVALID_ARGUMENT, "model fake_detector serves detection, not classification"},
      {"wrong task segment", [&] { return segment("fake_classifier"); }, C::INVALID_ARGUMENT,
       "model fake_classifier serves classification, not segmentation"},
      {"get model empty", [&] { return get_model(""); }, C::INVALID_ARGUMENT, "name is required"},
      {"get model unknown", [&] { return get_model("nope"); }, C::NOT_FOUND,
       "model \"nope\" is not served"},
      {"get model bad name", [&] { return get_model("two words"); }, C::INVALID_ARGUMENT,
       "name must be 1 to 128 characters of [A-Za-z0-9._-], got \"two words\""},
      {"long model name",
       [&] { return classify(ClassifyRequestFor(EncodedImage(png), std::string(200, 'm'))); },
       C::INVALID_ARGUMENT, "got \"mmmm"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const grpc::Status status = c.call();
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.fragment));
  }
  // Nothing reached the engine, and the server still answers.
  EXPECT_EQ(server.engine().submitted(), 0);
  pb::ClassifyResponse response;
  EXPECT_TRUE(server.stub()
                  .Classify(Context().get(), ClassifyRequestFor(EncodedImage(png)), &response)
                  .ok());

  // Unknown or invalid names never become label values.
  const std::string text = HttpGet(server.metrics().port(), "/metrics");
  EXPECT_THAT(text, Not(HasSubstr("nope")));
  EXPECT_THAT(text, Not(HasSubstr("a/b")));
  const auto samples = ParseExposition(text);
  EXPECT_EQ(SampleOrZero(samples, RequestsKey("", "Classify", "NOT_FOUND")), 1);
  EXPECT_EQ(SampleOrZero(samples, RequestsKey("", "GetModel", "NOT_FOUND")), 1);
  EXPECT_EQ(SampleOrZero(samples, RequestsKey("fake_detector", "Classify", "INVALID_ARGUMENT")), 1);
}

TEST(ServerTest, MessagesOverTheLimitAreRefusedByGrpc) {
  ServerOptions options;
  options.max_message_bytes = 64 << 10;
  TestServer server({}, options);
  pb::ClassifyResponse response;
  const grpc::Status status = server.stub().Classify(
      Context().get(), ClassifyRequestFor(EncodedImage(std::string(100 << 10, 'x'))), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
}

TEST(ServerTest, EngineFailuresPassThrough) {
  FakeEngineOptions options;
  options.failure = absl::InternalError("device lost");
  TestServer server(options);
  pb::ClassifyResponse response;
  const grpc::Status status = server.stub().Classify(
      Context().get(), ClassifyRequestFor(Rgb8Tensor(SolidImage(4, 4, {1, 1, 1}))), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(status.error_message(), "device lost");
}

// ---- time, cancellation, load ------------------------------------------------------------------

TEST(ServerTest, DeadlineReachesTheEngineAndExpiresWhileQueued) {
  FakeEngineOptions options;
  options.start_paused = true;
  TestServer server(options);
  const absl::Time sent = absl::Now();
  pb::ClassifyResponse response;
  const grpc::Status status = server.stub().Classify(
      Context(std::chrono::milliseconds(300)).get(),
      ClassifyRequestFor(Rgb8Tensor(SolidImage(4, 4, {1, 1, 1}))), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The front end handed the call's deadline to the engine...
  EXPECT_LT(absl::AbsDuration(server.engine().last_deadline() - (sent + absl::Milliseconds(300))),
            absl::Milliseconds(250));
  // ... which dropped the request from its queue. Whether the server saw its own deadline pass
  // or the client's cancellation first is a race, so either code is right.
  auto answered = [&server] {
    const auto samples = server.Scrape();
    return SampleOrZero(samples, RequestsKey("fake_classifier", "Classify", "DEADLINE_EXCEEDED")) +
           SampleOrZero(samples, RequestsKey("fake_classifier", "Classify", "CANCELLED"));
  };
  for (int i = 0; i < 500 && answered() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(answered(), 1);
  EXPECT_EQ(server.engine().answered(), 1);
}

TEST(ServerTest, ClientCancellationDropsTheQueuedRequest) {
  FakeEngineOptions options;
  options.start_paused = true;
  TestServer server(options);
  const pb::ClassifyRequest request = ClassifyRequestFor(Rgb8Tensor(SolidImage(4, 4, {1, 1, 1})));
  std::unique_ptr<PendingCall> call = StartClassify(server.stub(), request);
  ASSERT_TRUE(server.engine().WaitForQueued(1, absl::Seconds(10)));
  call->context.TryCancel();
  ASSERT_TRUE(call->done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(call->status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(server.WaitForSample(RequestsKey("fake_classifier", "Classify", "CANCELLED"), 1), 1);
  EXPECT_EQ(server.engine().answered(), 1);
}

TEST(ServerTest, FullQueueIsResourceExhaustedAndQueuedWorkStillCompletes) {
  FakeEngineOptions options;
  options.start_paused = true;
  options.max_queue_size = 2;
  TestServer server(options);
  const pb::ClassifyRequest request = ClassifyRequestFor(Rgb8Tensor(SolidImage(4, 4, {9, 1, 1})));
  std::vector<std::unique_ptr<PendingCall>> calls;
  for (int i = 0; i < 2; ++i) calls.push_back(StartClassify(server.stub(), request));
  ASSERT_TRUE(server.engine().WaitForQueued(2, absl::Seconds(10)));
  pb::ClassifyResponse response;
  const grpc::Status full = server.stub().Classify(Context().get(), request, &response);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(full.error_message(), HasSubstr("queue of fake_classifier is full"));
  server.engine().Resume();
  for (auto& call : calls) {
    ASSERT_TRUE(call->done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_TRUE(call->status.ok()) << call->status.error_message();
    EXPECT_EQ(call->response.classes(0).label(), "red");
  }
}

TEST(ServerTest, ConcurrentCallsAreAllAnsweredAndCounted) {
  FakeEngineOptions options;
  options.max_queue_size = 1000;
  TestServer server(options);
  constexpr int kCalls = 60;
  std::vector<pb::ClassifyRequest> requests;
  for (int i = 0; i < kCalls; ++i) {
    requests.push_back(ClassifyRequestFor(Rgb8Tensor(SolidImage(
        8, 8,
        {static_cast<uchar>(i % 3 == 0 ? 200 : 10), static_cast<uchar>(i % 3 == 1 ? 200 : 10),
         static_cast<uchar>(i % 3 == 2 ? 200 : 10)}))));
  }
  std::vector<std::unique_ptr<PendingCall>> calls;
  for (const auto& request : requests) calls.push_back(StartClassify(server.stub(), request));
  const char* expected[] = {"red", "green", "blue"};
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(calls[i]->done.WaitForNotificationWithTimeout(absl::Seconds(20)));
    ASSERT_TRUE(calls[i]->status.ok()) << calls[i]->status.error_message();
    EXPECT_EQ(calls[i]->response.classes(0).label(), expected[i % 3]);
  }
  const auto samples = server.Scrape();
  EXPECT_EQ(SampleOrZero(samples, RequestsKey("fake_classifier", "Classify", "OK")), kCalls);
  EXPECT_EQ(
      SampleOrZero(samples, "iis_inflight_requests{method=\"Classify\",model=\"fake_classifier\"}"),
      0);
}

// ---- health and lifecycle --------------------------------------------------------------------

TEST(ServerTest, HealthIsNotServingUntilTheEngineIsAttached) {
  TestServer server({}, {}, /*attach=*/false);
  const std::string service = "internimage.serving.v1.VisionService";
  EXPECT_EQ(server.Health(""), health::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(server.Health(service), health::HealthCheckResponse::NOT_SERVING);
  pb::ClassifyResponse response;
  grpc::Status status = server.stub().Classify(
      Context().get(), ClassifyRequestFor(Rgb8Tensor(SolidImage(4, 4, {1, 1, 1}))), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("models are still loading"));
  pb::ListModelsResponse list;
  EXPECT_EQ(server.stub().ListModels(Context().get(), {}, &list).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  server.Attach();
  EXPECT_EQ(server.Health(""), health::HealthCheckResponse::SERVING);
  EXPECT_EQ(server.Health(service), health::HealthCheckResponse::SERVING);
  EXPECT_TRUE(server.stub()
                  .Classify(Context().get(),
                            ClassifyRequestFor(Rgb8Tensor(SolidImage(4, 4, {1, 1, 1}))), &response)
                  .ok());
  EXPECT_FALSE(server.server().AttachEngine(std::make_unique<FakeEngine>()).ok());
}

TEST(ServerTest, DrainFinishesInFlightWorkAndRefusesNewCalls) {
  FakeEngineOptions options;
  options.start_paused = true;
  TestServer server(options);
  const pb::ClassifyRequest request = ClassifyRequestFor(Rgb8Tensor(SolidImage(4, 4, {1, 9, 1})));
  std::vector<std::unique_ptr<PendingCall>> calls;
  for (int i = 0; i < 3; ++i) calls.push_back(StartClassify(server.stub(), request));
  ASSERT_TRUE(server.engine().WaitForQueued(3, absl::Seconds(10)));

  absl::Status drained;
  std::thread drain([&] { drained = server.server().Drain(absl::Seconds(20)); });
  // Health flips at once; new calls are refused while the queued ones wait.
  health::HealthCheckResponse::ServingStatus health_status = health::HealthCheckResponse::SERVING;
  for (int i = 0; i < 200 && health_status == health::HealthCheckResponse::SERVING; ++i) {
    health_status = server.Health("");
    if (health_status == health::HealthCheckResponse::SERVING) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  EXPECT_EQ(health_status, health::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(server.Health("internimage.serving.v1.VisionService"),
            health::HealthCheckResponse::NOT_SERVING);
  pb::ClassifyResponse response;
  const grpc::Status refused = server.stub().Classify(Context().get(), request, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.error_message(), HasSubstr("server is shutting down"));
  for (auto& call : calls) EXPECT_FALSE(call->done.HasBeenNotified());

  server.engine().Resume();
  for (auto& call : calls) {
    ASSERT_TRUE(call->done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_TRUE(call->status.ok()) << call->status.error_message();
    EXPECT_EQ(call->response.classes(0).label(), "green");
  }
  drain.join();
  EXPECT_TRUE(drained.ok()) << drained;
}

TEST(ServerTest, DrainGraceRunsOutForStuckWork) {
  FakeEngineOptions options;
  options.start_paused = true;
  TestServer server(options);
  std::unique_ptr<PendingCall> call =
      StartClassify(server.stub(), ClassifyRequestFor(Rgb8Tensor(SolidImage(4, 4, {1, 1, 1}))));
  ASSERT_TRUE(server.engine().WaitForQueued(1, absl::Seconds(10)));
  const absl::Status drained = server.server().Drain(absl::Milliseconds(200));
  EXPECT_EQ(drained.code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(call->done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(call->status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(ServerTest, OpenHealthWatchStreamsSeeNotServingAndDoNotHoldTheDrain) {
  TestServer server;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
  health::HealthCheckRequest request;
  auto health_stub = health::Health::NewStub(server.channel());
  std::unique_ptr<grpc::ClientReader<health::HealthCheckResponse>> watch =
      health_stub->Watch(&context, request);
  health::HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), health::HealthCheckResponse::SERVING);

  const absl::Time start = absl::Now();
  std::thread drain([&] { EXPECT_TRUE(server.server().Drain(absl::Seconds(15)).ok()); });
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), health::HealthCheckResponse::NOT_SERVING);
  drain.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  while (watch->Read(&update)) {
  }
  watch->Finish().IgnoreError();
}

// ---- reflection ------------------------------------------------------------------------------

// Calls ServerReflectionInfo with list_services through a generic stub, building the messages
// from the descriptors the reflection library registers.
std::vector<std::string> ListServicesByReflection(std::shared_ptr<grpc::Channel> channel) {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* request_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionRequest");
  const auto* response_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionResponse");
  if (request_type == nullptr || response_type == nullptr) {
    ADD_FAILURE() << "reflection messages are not in the generated pool";
    return {};
  }
  auto* factory = google::protobuf::MessageFactory::generated_factory();
  std::unique_ptr<google::protobuf::Message> request(factory->GetPrototype(request_type)->New());
  request->GetReflection()->SetString(request.get(), request_type->FindFieldByName("list_services"),
                                      "*");
  std::string serialized;
  request->SerializeToString(&serialized);

  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
  auto await = [&cq](intptr_t tag) {
    void* got = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&got, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(got), tag);
    return ok;
  };
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  EXPECT_TRUE(await(1));
  grpc::Slice slice(serialized);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  EXPECT_TRUE(await(2));
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(3));
  EXPECT_TRUE(await(3));
  call->WritesDone(reinterpret_cast<void*>(4));
  await(4);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  await(5);
  EXPECT_TRUE(status.ok()) << status.error_message();

  std::vector<grpc::Slice> slices;
  in.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::unique_ptr<google::protobuf::Message> response(factory->GetPrototype(response_type)->New());
  EXPECT_TRUE(response->ParseFromString(bytes));
  const auto* list_field = response_type->FindFieldByName("list_services_response");
  const google::protobuf::Message& list =
      response->GetReflection()->GetMessage(*response, list_field);
  const auto* service_field = list.GetDescriptor()->FindFieldByName("service");
  std::vector<std::string> names;
  for (int i = 0; i < list.GetReflection()->FieldSize(list, service_field); ++i) {
    const google::protobuf::Message& service =
        list.GetReflection()->GetRepeatedMessage(list, service_field, i);
    names.push_back(service.GetReflection()->GetString(
        service, service.GetDescriptor()->FindFieldByName("name")));
  }
  return names;
}

TEST(ServerTest, ReflectionListsTheServices) {
  TestServer server;
  EXPECT_THAT(
      ListServicesByReflection(server.channel()),
      ::testing::IsSupersetOf({"internimage.serving.v1.VisionService", "grpc.health.v1.Health"}));
}

// ---- metrics ---------------------------------------------------------------------------------

TEST(ServerTest, MetricsEndpointCountsEveryCall) {
  TestServer server;
  const pb::Image image = Rgb8Tensor(SolidImage(8, 8, {5, 5, 5}));
  pb::ClassifyResponse classify;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(server.stub().Classify(Context().get(), ClassifyRequestFor(image), &classify).ok());
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(
        server.stub().Classify(Context().get(), ClassifyRequestFor(image, "", 9), &classify).ok());
  }
  pb::DetectRequest detect_request;
  *detect_request.mutable_image() = image;
  pb::DetectResponse detect;
  ASSERT_TRUE(server.stub().Detect(Context().get(), detect_request, &detect).ok());
  pb::ListModelsResponse list;
  ASSERT_TRUE(server.stub().ListModels(Context().get(), {}, &list).ok());

  const std::string response = HttpGet(server.metrics().port(), "/metrics");
  ASSERT_THAT(response, HasSubstr("200 OK"));
  const auto s = ParseExposition(response);
  EXPECT_EQ(SampleOrZero(s, RequestsKey("fake_classifier", "Classify", "OK")), 5);
  EXPECT_EQ(SampleOrZero(s, RequestsKey("fake_classifier", "Classify", "INVALID_ARGUMENT")), 2);
  EXPECT_EQ(SampleOrZero(s, RequestsKey("fake_detector", "Detect", "OK")), 1);
  EXPECT_EQ(SampleOrZero(s, RequestsKey("", "ListModels", "OK")), 1);
  EXPECT_EQ(
      SampleOrZero(
          s, "iis_request_duration_seconds_count{method=\"Classify\",model=\"fake_classifier\"}"),
      7);
  // The engine's stage instruments (recorded by the fake engine through the same Metrics).
  EXPECT_EQ(SampleOrZero(s, "iis_queue_duration_seconds_count{model=\"fake_classifier\"}"), 5);
  EXPECT_EQ(SampleOrZero(s, "iis_batch_size_count{model=\"fake_classifier\"}"), 5);
  EXPECT_EQ(SampleOrZero(s, "iis_queue_depth{model=\"fake_classifier\"}"), 0);
  EXPECT_GT(SampleOrZero(s, "process_resident_memory_bytes"), 0);
}

// ---- TLS -------------------------------------------------------------------------------------

class TlsFiles {
 public:
  // Creates a CA, a server certificate for localhost/127.0.0.1 and a client certificate with
  // the openssl command-line tool. ok() is false when openssl is missing.
  TlsFiles() {
    std::string pattern = (std::filesystem::temp_directory_path() / "iis_tls_XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
    const std::string d = dir_.string();
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script = absl::StrCat(
        "set -e; cd '", d, "'; ", "openssl req -x509 ", key,
        " -keyout ca.key -out ca.pem -days 2 -subj /CN=iis-test-ca; ", "openssl req ", key,
        " -keyout server.key -out server.csr -subj /CN=localhost; ",
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' "
        "> server.ext; ",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-out server.pem -extfile server.ext; ",
        "openssl req ", key, " -keyout client.key -out client.csr -subj /CN=iis-test-client; ",
        "printf 'extendedKeyUsage=clientAuth\\n' > client.ext; ",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-out client.pem -extfile client.ext");
    ok_ = std::system("openssl version > /dev/null 2>&1") == 0 &&
          std::system(absl::StrCat("(", script, ") > '", d, "/openssl.log' 2>&1").c_str()) == 0;
  }
  ~TlsFiles() { std::filesystem::remove_all(dir_); }
  bool ok() const { return ok_; }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::string Read(const std::string& name) const {
    std::ifstream in(Path(name));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::filesystem::path dir_;
  bool ok_ = false;
};

grpc::Status CallOverTls(int port, const grpc::SslCredentialsOptions& ssl) {
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto channel =
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), grpc::SslCredentials(ssl), args);
  pb::ListModelsResponse list;
  return pb::VisionService::NewStub(channel)->ListModels(Context(std::chrono::seconds(5)).get(), {},
                                                         &list);
}

grpc::Status CallInsecurely(int port) {
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  pb::ListModelsResponse list;
  return pb::VisionService::NewStub(channel)->ListModels(Context(std::chrono::seconds(5)).get(), {},
                                                         &list);
}

TEST(ServerTest, TlsAndMutualTls) {
  TlsFiles files;
  if (!files.ok()) GTEST_SKIP() << "openssl is not installed or failed: TLS not tested";

  ServerOptions tls;
  tls.tls_cert_file = files.Path("server.pem");
  tls.tls_key_file = files.Path("server.key");
  {
    TestServer server({}, tls);
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = files.Read("ca.pem");
    const grpc::Status status = CallOverTls(server.server().port(), ssl);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(CallInsecurely(server.server().port()).error_code(), grpc::StatusCode::UNAVAILABLE);
  }

  ServerOptions mutual = tls;
  mutual.tls_client_ca_file = files.Path("ca.pem");
  {
    TestServer server({}, mutual);
    grpc::SslCredentialsOptions anonymous;
    anonymous.pem_root_certs = files.Read("ca.pem");
    EXPECT_FALSE(CallOverTls(server.server().port(), anonymous).ok());
    grpc::SslCredentialsOptions with_certificate = anonymous;
    with_certificate.pem_private_key = files.Read("client.key");
    with_certificate.pem_cert_chain = files.Read("client.pem");
    const grpc::Status status = CallOverTls(server.server().port(), with_certificate);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  Metrics::Options metrics_options;
  metrics_options.port = -1;
  std::unique_ptr<Metrics> metrics = *Metrics::Create(metrics_options);
  ServerOptions not_pem = tls;
  not_pem.listen_address = "127.0.0.1:0";
  not_pem.tls_key_file = files.Path("server.ext");
  EXPECT_EQ(VisionServer::Create(not_pem, metrics.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  ServerOptions missing = tls;
  missing.listen_address = "127.0.0.1:0";
  missing.tls_cert_file = files.Path("nope.pem");
  EXPECT_EQ(VisionServer::Create(missing, metrics.get()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ServerTest, APortInUseIsRefused) {
  TestServer first;
  Metrics::Options metrics_options;
  metrics_options.port = -1;
  std::unique_ptr<Metrics> metrics = *Metrics::Create(metrics_options);
  ServerOptions options;
  options.listen_address = absl::StrCat("127.0.0.1:", first.server().port());
  absl::StatusOr<std::unique_ptr<VisionServer>> second =
      VisionServer::Create(options, metrics.get());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("cannot listen on"));
}

// ---- the process: fake_vision_server (RunServer) ------------------------------------------------

using testing_process::Process;

// fake_vision_server is built next to this test binary (build/tests/).
std::string FakeServerBinary() {
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "fake_vision_server")
      .string();
}

// Waits for a port file and returns its number, or -1.
int ReadPortFile(const std::string& path, absl::Duration timeout) {
  return testing_process::ReadPortFile(
      path, std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(FakeVisionServerProcessTest, ServesUntilSigtermThenDrainsAndExitsZero) {
  const std::string binary = FakeServerBinary();
  ASSERT_TRUE(std::filesystem::exists(binary)) << binary << " is not built";
  std::string pattern = (std::filesystem::temp_directory_path() / "iis_proc_XXXXXX").string();
  const std::filesystem::path dir = mkdtemp(pattern.data());
  const std::string port_file = (dir / "port").string();
  const std::string metrics_file = (dir / "metrics_port").string();
  const std::string log = (dir / "log").string();
  {
    Process server({binary, "--port=0", "--metrics-port=0", "--port-file=" + port_file,
                    "--metrics-port-file=" + metrics_file, "--drain-grace=5s", "--latency=500ms"},
                   log);
    const int port = ReadPortFile(port_file, absl::Seconds(30));
    const int metrics_port = ReadPortFile(metrics_file, absl::Seconds(5));
    ASSERT_GT(port, 0) << ReadText(log);
    ASSERT_GT(metrics_port, 0);
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    auto stub = pb::VisionService::NewStub(channel);
    pb::ClassifyResponse response;
    ASSERT_TRUE(stub->Classify(Context().get(),
                               ClassifyRequestFor(Rgb8Tensor(SolidImage(4, 4, {1, 1, 90}))),
                               &response)
                    .ok());
    EXPECT_EQ(response.classes(0).label(), "blue");

    // SIGTERM with a request in flight: it still completes, and the process exits 0.
    std::unique_ptr<PendingCall> in_flight =
        StartClassify(*stub, ClassifyRequestFor(Rgb8Tensor(SolidImage(4, 4, {90, 1, 1}))));
    const std::string inflight =
        "iis_inflight_requests{method=\"Classify\",model=\"fake_classifier\"}";
    for (int i = 0; i < 500; ++i) {
      if (SampleOrZero(ParseExposition(HttpGet(metrics_port, "/metrics")), inflight) == 1) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    server.Signal(SIGTERM);
    EXPECT_EQ(server.Wait(std::chrono::seconds(20)), 0) << ReadText(log);
    ASSERT_TRUE(in_flight->done.WaitForNotificationWithTimeout(absl::Seconds(5)));
    EXPECT_TRUE(in_flight->status.ok()) << in_flight->status.error_message();
  }
  const std::string text = ReadText(log);
  EXPECT_THAT(text, HasSubstr("NOT_SERVING while the models load"));
  EXPECT_THAT(text, HasSubstr("serving on 127.0.0.1:"));
  EXPECT_THAT(text, HasSubstr("SIGTERM: draining"));
  EXPECT_THAT(text, HasSubstr("drained in"));
  std::filesystem::remove_all(dir);
}

TEST(FakeVisionServerProcessTest, StartUpFailuresExitNonZeroWithAReason) {
  const std::string binary = FakeServerBinary();
  ASSERT_TRUE(std::filesystem::exists(binary)) << binary << " is not built";
  std::string pattern = (std::filesystem::temp_directory_path() / "iis_proc_XXXXXX").string();
  const std::filesystem::path dir = mkdtemp(pattern.data());
  TestServer occupant;  // holds a port
  {
    Process busy({binary, absl::StrCat("--port=", occupant.server().port()), "--metrics-port=-1"},
                 (dir / "busy.log").string());
    EXPECT_EQ(busy.Wait(std::chrono::seconds(20)), 1);
  }
  EXPECT_THAT(ReadText((dir / "busy.log").string()),
              HasSubstr("start-up failed: gRPC server: UNAVAILABLE: cannot listen on"));
  {
    Process bad({binary, "--metrics-port=-7"}, (dir / "bad.log").string());
    EXPECT_EQ(bad.Wait(std::chrono::seconds(20)), 2);
  }
  EXPECT_THAT(ReadText((dir / "bad.log").string()),
              HasSubstr("metrics_port must be -1 (off) or in [0, 65535], got -7"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace iis
