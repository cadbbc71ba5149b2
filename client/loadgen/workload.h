// What a load test sends: the RPC, its pre-serialized requests, and how to read the answers.
//
// Requests are serialized once, before the run, into grpc::ByteBuffers that every call shares
// (a copy only takes slice references), so the generator spends no time on protobuf while it runs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/common/requests.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/byte_buffer.h"
#include "internimage/serving/v1/vision.pb.h"

namespace iis::client {

// The RPCs a load test can drive. GetModel and Health are cheap: they measure the generator and
// the transport rather than the models.
enum class LoadRpc { kClassify, kDetect, kSegment, kGetModel, kHealth };

// Parses classify|detect|segment|getmodel|health for option `flag`.
absl::StatusOr<LoadRpc> ParseLoadRpc(absl::string_view flag, absl::string_view text);
// Returns the --rpc spelling of `rpc`.
absl::string_view LoadRpcName(LoadRpc rpc);
// Returns true for the RPCs that carry an image.
bool RpcTakesImages(LoadRpc rpc);
// Returns the task of an image RPC (TASK_CLASSIFICATION, TASK_DETECTION, TASK_SEGMENTATION),
// TASK_UNSPECIFIED for getmodel and health.
::internimage::serving::v1::Task TaskOfRpc(LoadRpc rpc);

// One input image of a load test.
struct InputImage {
  std::string name;     // file path or "synthetic WxH", for messages
  std::string encoded;  // the file's bytes
};

// The requests of one load test, handed out round-robin. Immutable after Create(): thread-safe.
class Workload {
 public:
  // Builds one request per image for the image RPCs (decoding each image first when
  // options.raw), or a single request for getmodel (asking for options.model, which must be set)
  // and health (the server's overall status). Fails with INVALID_ARGUMENT naming the image when
  // one does not decode (--raw), or when an image RPC gets no image.
  static absl::StatusOr<Workload> Create(LoadRpc rpc, const RequestOptions& options,
                                         const std::vector<InputImage>& images);

  LoadRpc rpc() const { return rpc_; }
  // The full method path, e.g. "/internimage.serving.v1.VisionService/Classify". gRPC keeps a
  // pointer to it while a call runs, so the Workload must outlive its calls.
  const std::string& method() const { return method_; }
  // Returns request `index` modulo the number of requests.
  const grpc::ByteBuffer& payload(uint64_t index) const {
    return payloads_[index % payloads_.size()];
  }
  size_t payload_count() const { return payloads_.size(); }
  // Mean serialized request size in bytes.
  int64_t mean_payload_bytes() const { return mean_payload_bytes_; }
  // True when successful answers carry ResponseMetadata (classify, detect, segment).
  bool answers_carry_metadata() const { return RpcTakesImages(rpc_); }

 private:
  LoadRpc rpc_ = LoadRpc::kHealth;
  std::string method_;
  std::vector<grpc::ByteBuffer> payloads_;
  int64_t mean_payload_bytes_ = 0;
};

// Reads the ResponseMetadata (field 1) of a serialized ClassifyResponse, DetectResponse or
// SegmentResponse without parsing the rest (masks and label maps can be large). Returns false
// when the buffer is malformed or holds no metadata. Thread-safe.
bool ExtractResponseMetadata(const grpc::ByteBuffer& response,
                             ::internimage::serving::v1::ResponseMetadata* metadata);

// Checks, before any load, that every channel connects within `connect_timeout` and that the
// requested model exists on each target and serves the RPC's task (ListModels, which no load
// test drives, so the server's per-RPC counters are not disturbed). For getmodel without a model,
// `model` is set to the first model the first target lists. Errors carry the gRPC status code
// (UNAVAILABLE for an unreachable target, NOT_FOUND for an unknown model) and name the target.
absl::Status PreflightTargets(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                              const std::vector<std::string>& targets, LoadRpc rpc,
                              absl::Duration connect_timeout, std::string* model);

}  // namespace iis::client
