// Benchmarks of the front end: the image header probe on full-size files, and the cost of a call
// through gRPC + VisionService + the (nearly free) FakeEngine on loopback, i.e. what the front end
// adds to every request. Run: build/bin/frontend_bench
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "internimage/serving/v1/vision.grpc.pb.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "server/frontend/image_header.h"
#include "server/frontend/server.h"
#include "server/metrics/metrics.h"
#include "tests/fake_engine.h"

namespace iis {
namespace {

namespace pb = ::internimage::serving::v1;

// A 1920x1080 photograph-like image (smooth gradients plus noise) encoded as `ext`.
const std::string& EncodedFullHd(const std::string& ext) {
  static auto* cache = new std::map<std::string, std::string>();
  std::string& bytes = (*cache)[ext];
  if (bytes.empty()) {
    cv::Mat image(1080, 1920, CV_8UC3);
    cv::randn(image, cv::Scalar(128, 110, 90), cv::Scalar(40, 40, 40));
    std::vector<uchar> buffer;
    cv::imencode(ext, image, buffer);
    bytes.assign(buffer.begin(), buffer.end());
  }
  return bytes;
}

void BM_ProbeImageHeader(benchmark::State& state, const std::string& ext) {
  const std::string& bytes = EncodedFullHd(ext);
  for (auto _ : state) {
    absl::StatusOr<ImageHeader> header = ProbeImageHeader(bytes);
    benchmark::DoNotOptimize(header);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
  state.counters["file_bytes"] = static_cast<double>(bytes.size());
}
BENCHMARK_CAPTURE(BM_ProbeImageHeader, jpeg, std::string(".jpg"));
BENCHMARK_CAPTURE(BM_ProbeImageHeader, png, std::string(".png"));
BENCHMARK_CAPTURE(BM_ProbeImageHeader, webp, std::string(".webp"));
BENCHMARK_CAPTURE(BM_ProbeImageHeader, bmp, std::string(".bmp"));

// One server for all round-trip benchmarks, on 127.0.0.1, metrics not served over HTTP.
struct LoopbackServer {
  LoopbackServer() {
    Metrics::Options metrics_options;
    metrics_options.port = -1;
    metrics = *Metrics::Create(metrics_options);
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    server = *VisionServer::Create(options, metrics.get());
    FakeEngineOptions engine_options;
    engine_options.max_queue_size = 1 << 20;
    engine_options.metrics = metrics.get();
    const absl::Status attached =
        server->AttachEngine(std::make_unique<FakeEngine>(engine_options));
    if (!attached.ok()) {
      std::fprintf(stderr, "%s\n", attached.ToString().c_str());
      std::abort();
    }
    channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port()),
                                  grpc::InsecureChannelCredentials());
  }
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<VisionServer> server;
  std::shared_ptr<grpc::Channel> channel;
};

LoopbackServer& Server() {
  static auto* server = new LoopbackServer();
  return *server;
}

void BM_GetModelRoundTrip(benchmark::State& state) {
  auto stub = pb::VisionService::NewStub(Server().channel);
  pb::GetModelRequest request;
  request.set_name(FakeEngine::kClassifier);
  for (auto _ : state) {
    grpc::ClientContext context;
    pb::ModelInfo info;
    if (!stub->GetModel(&context, request, &info).ok()) state.SkipWithError("GetModel failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetModelRoundTrip)->UseRealTime()->Threads(1)->Threads(4);

// Classify of an 8x8 raw image: validation, submit, the fake engine's worker hop, Finish.
void BM_ClassifyRoundTrip(benchmark::State& state) {
  auto stub = pb::VisionService::NewStub(Server().channel);
  pb::ClassifyRequest request;
  pb::RawTensor* tensor = request.mutable_image()->mutable_tensor();
  tensor->set_format(pb::RawTensor::UINT8_HWC_RGB);
  tensor->add_shape(8);
  tensor->add_shape(8);
  tensor->add_shape(3);
  tensor->set_data(std::string(8 * 8 * 3, '\x40'));
  for (auto _ : state) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    pb::ClassifyResponse response;
    if (!stub->Classify(&context, request, &response).ok()) state.SkipWithError("Classify failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ClassifyRoundTrip)->UseRealTime()->Threads(1)->Threads(4);

// A request refused by validation (top_k out of range): the cheapest path through a handler.
void BM_RejectedRoundTrip(benchmark::State& state) {
  auto stub = pb::VisionService::NewStub(Server().channel);
  pb::ClassifyRequest request;
  request.set_top_k(99);
  request.mutable_image()->set_encoded("x");
  for (auto _ : state) {
    grpc::ClientContext context;
    pb::ClassifyResponse response;
    benchmark::DoNotOptimize(stub->Classify(&context, request, &response));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RejectedRoundTrip)->UseRealTime();

}  // namespace
}  // namespace iis

BENCHMARK_MAIN();
