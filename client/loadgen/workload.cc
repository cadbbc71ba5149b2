#include "client/loadgen/workload.h"

#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/common/channel.h"
#include "client/common/exit_codes.h"
#include "client/common/images.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "internimage/serving/v1/vision.grpc.pb.h"

namespace iis::client {
namespace {

namespace pb = ::internimage::serving::v1;
using ::google::protobuf::internal::WireFormatLite;

struct RpcInfo {
  LoadRpc rpc;
  const char* name;
  const char* method;
};
constexpr RpcInfo kRpcs[] = {
    {LoadRpc::kClassify, "classify", "/internimage.serving.v1.VisionService/Classify"},
    {LoadRpc::kDetect, "detect", "/internimage.serving.v1.VisionService/Detect"},
    {LoadRpc::kSegment, "segment", "/internimage.serving.v1.VisionService/Segment"},
    {LoadRpc::kGetModel, "getmodel", "/internimage.serving.v1.VisionService/GetModel"},
    {LoadRpc::kHealth, "health", "/grpc.health.v1.Health/Check"},
};

const RpcInfo& InfoOf(LoadRpc rpc) {
  for (const RpcInfo& info : kRpcs) {
    if (info.rpc == rpc) return info;
  }
  return kRpcs[0];
}

grpc::ByteBuffer Serialize(const google::protobuf::MessageLite& message) {
  const std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

absl::Status ToAbsl(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace

absl::StatusOr<LoadRpc> ParseLoadRpc(absl::string_view flag, absl::string_view text) {
  for (const RpcInfo& info : kRpcs) {
    if (text == info.name) return info.rpc;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      flag, ": expected classify, detect, segment, getmodel or health, got '", text, "'"));
}

absl::string_view LoadRpcName(LoadRpc rpc) { return InfoOf(rpc).name; }

bool RpcTakesImages(LoadRpc rpc) {
  return rpc == LoadRpc::kClassify || rpc == LoadRpc::kDetect || rpc == LoadRpc::kSegment;
}

pb::Task TaskOfRpc(LoadRpc rpc) {
  switch (rpc) {
    case LoadRpc::kClassify:
      return pb::TASK_CLASSIFICATION;
    case LoadRpc::kDetect:
      return pb::TASK_DETECTION;
    case LoadRpc::kSegment:
      return pb::TASK_SEGMENTATION;
    default:
      return pb::TASK_UNSPECIFIED;
  }
}

absl::StatusOr<Workload> Workload::Create(LoadRpc rpc, const RequestOptions& options,
                                          const std::vector<InputImage>& images) {
  Workload workload;
  workload.rpc_ = rpc;
  workload.method_ = InfoOf(rpc).method;
  if (rpc == LoadRpc::kHealth) {
    workload.payloads_.push_back(Serialize(grpc::health::v1::HealthCheckRequest()));
  } else if (rpc == LoadRpc::kGetModel) {
    if (options.model.empty()) {
      return absl::InvalidArgumentError("--rpc getmodel: expected a model name, got none");
    }
    pb::GetModelRequest request;
    request.set_name(options.model);
    workload.payloads_.push_back(Serialize(request));
  } else {
    if (images.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--rpc ", LoadRpcName(rpc), ": expected at least one image, got none"));
    }
    for (const InputImage& input : images) {
      pb::Image image;
      if (options.raw || options.tensor_size > 0) {
        auto decoded = DecodeImage(input.name, input.encoded);
        if (!decoded.ok()) return decoded.status();
        if (options.raw) {
          SetRawImage(*decoded, &image);
        } else {
          SetNormalizedTensor(*decoded, options.tensor_size, &image);
        }
      } else {
        image.set_encoded(input.encoded);
      }
      switch (rpc) {
        case LoadRpc::kClassify:
          workload.payloads_.push_back(Serialize(MakeClassifyRequest(options, image)));
          break;
        case LoadRpc::kDetect:
          workload.payloads_.push_back(Serialize(MakeDetectRequest(options, image)));
          break;
        default:
          workload.payloads_.push_back(Serialize(MakeSegmentRequest(options, image)));
          break;
      }
    }
  }
  int64_t total = 0;
  for (const grpc::ByteBuffer& payload : workload.payloads_) {
    total += static_cast<int64_t>(payload.Length());
  }
  workload.mean_payload_bytes_ = total / static_cast<int64_t>(workload.payloads_.size());
  return workload;
}

bool ExtractResponseMetadata(const grpc::ByteBuffer& response, pb::ResponseMetadata* metadata) {
  // ProtoBufferReader wants a mutable buffer but only reads it; copying takes slice references.
  grpc::ByteBuffer copy(response);
  grpc::ProtoBufferReader reader(&copy);
  google::protobuf::io::CodedInputStream in(&reader);
  constexpr uint32_t kMetadataTag =
      (1 << 3) | WireFormatLite::WIRETYPE_LENGTH_DELIMITED;  // field 1 of every answer
  for (uint32_t tag = in.ReadTag(); tag != 0; tag = in.ReadTag()) {
    if (tag == kMetadataTag) {
      std::string bytes;
      return WireFormatLite::ReadBytes(&in, &bytes) && metadata->ParseFromString(bytes);
    }
    if (!WireFormatLite::SkipField(&in, tag)) return false;
  }
  return false;
}

absl::Status PreflightTargets(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                              const std::vector<std::string>& targets, LoadRpc rpc,
                              absl::Duration connect_timeout, std::string* model) {
  for (size_t i = 0; i < channels.size(); ++i) {
    const std::string& target = targets[i];
    if (absl::Status ready = WaitForReady(*channels[i], target, connect_timeout); !ready.ok()) {
      return ready;
    }
    if (rpc == LoadRpc::kHealth) continue;
    auto stub = pb::VisionService::NewStub(channels[i]);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    pb::ListModelsResponse list;
    if (grpc::Status status = stub->ListModels(&context, pb::ListModelsRequest(), &list);
        !status.ok()) {
      return absl::Status(ToAbsl(status).code(), absl::StrCat(target, ": ListModels failed with ",
                                                              StatusCodeName(status.error_code()),
                                                              ": ", status.error_message()));
    }
    if (rpc == LoadRpc::kGetModel && model->empty()) {
      if (list.models().empty()) {
        return absl::NotFoundError(absl::StrCat(target, " serves no model"));
      }
      *model = list.models(0).name();
      continue;
    }
    const pb::Task task = TaskOfRpc(rpc);
    const pb::ModelInfo* found = nullptr;
    for (const pb::ModelInfo& info : list.models()) {
      const bool match =
          model->empty() ? info.is_default() && info.task() == task : info.name() == *model;
      if (match) found = &info;
    }
    if (found == nullptr) {
      return absl::NotFoundError(
          model->empty() ? absl::StrCat(target, " has no default ", ProtoTaskName(task),
                                        " model; pass --model NAME")
                         : absl::StrCat(target, " does not serve a model named '", *model, "'"));
    }
    if (task != pb::TASK_UNSPECIFIED && found->task() != task) {
      return absl::InvalidArgumentError(absl::StrCat(target, ": model '", found->name(),
                                                     "' serves ", ProtoTaskName(found->task()),
                                                     ", not --rpc ", LoadRpcName(rpc)));
    }
  }
  return absl::OkStatus();
}

}  // namespace iis::client
