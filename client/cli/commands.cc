#include "client/cli/commands.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "client/cli/rle.h"
#include "client/cli/visualize.h"
#include "client/common/channel.h"
#include "client/common/exit_codes.h"
#include "client/common/images.h"
#include "common/file_io.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "internimage/serving/v1/vision.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace iis::client {
namespace {

namespace fs = std::filesystem;
namespace pb = ::internimage::serving::v1;
using Json = ::nlohmann::ordered_json;  // keys stay in the order they are written
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

// A plain-text table: columns as wide as their widest cell, two spaces apart; the columns
// flagged in `right` are right-aligned (numbers).
std::string FormatTable(const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right, absl::string_view indent = "") {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line(indent);
    for (size_t c = 0; c < row.size(); ++c) {
      const bool align_right = c < right.size() && right[c];
      const std::string pad(width[c] - row[c].size(), ' ');
      absl::StrAppend(&line, c > 0 ? "  " : "", align_right ? pad : "", row[c],
                      align_right || c + 1 == row.size() ? "" : pad);
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string TimingSummary(const pb::ResponseMetadata& metadata) {
  const pb::Timing& t = metadata.timing();
  return absl::StrFormat(
      "model %s%s, server %.1f ms (queue %.1f, preprocess %.1f, inference %.1f, postprocess "
      "%.1f), batch %d",
      metadata.model(),
      metadata.model_version().empty() ? "" : absl::StrCat(" v", metadata.model_version()),
      t.total_us() / 1e3, t.queue_us() / 1e3, t.preprocess_us() / 1e3, t.inference_us() / 1e3,
      t.postprocess_us() / 1e3, metadata.batch_size());
}

std::string ClassifyTable(const std::string& file, const pb::ClassifyResponse& response) {
  std::vector<std::vector<std::string>> rows = {{"rank", "class", "score", "label"}};
  for (int i = 0; i < response.classes_size(); ++i) {
    const pb::ClassScore& c = response.classes(i);
    rows.push_back({absl::StrCat(i + 1), absl::StrCat(c.class_id()),
                    absl::StrFormat("%.4f", c.score()), c.label()});
  }
  return absl::StrCat(file, ": ", TimingSummary(response.metadata()), "\n",
                      FormatTable(rows, {true, true, true, false}, "  "));
}

std::string DetectTable(const std::string& file, const pb::DetectResponse& response) {
  std::vector<std::vector<std::string>> rows = {
      {"#", "class", "score", "x1", "y1", "x2", "y2", "mask px", "label"}};
  for (int i = 0; i < response.detections_size(); ++i) {
    const pb::Detection& d = response.detections(i);
    const auto& counts = d.mask().counts();
    rows.push_back(
        {absl::StrCat(i + 1), absl::StrCat(d.class_id()), absl::StrFormat("%.3f", d.score()),
         absl::StrFormat("%.1f", d.box().x1()), absl::StrFormat("%.1f", d.box().y1()),
         absl::StrFormat("%.1f", d.box().x2()), absl::StrFormat("%.1f", d.box().y2()),
         d.has_mask() ? absl::StrCat(RleArea(absl::MakeConstSpan(counts.data(), counts.size())))
                      : "-",
         d.label()});
  }
  return absl::StrCat(
      file, ": ", response.detections_size(), " detections in ", response.image_width(), "x",
      response.image_height(), ", ", TimingSummary(response.metadata()), "\n",
      FormatTable(rows, {true, true, true, true, true, true, true, true, false}, "  "));
}

std::string SegmentTable(const std::string& file, const pb::SegmentResponse& response) {
  const double total =
      std::max<double>(1.0, static_cast<double>(response.width()) * response.height());
  std::vector<std::vector<std::string>> rows = {{"class", "pixels", "share", "label"}};
  for (const pb::ClassPixels& c : response.class_pixels()) {
    rows.push_back({absl::StrCat(c.class_id()), absl::StrCat(c.pixels()),
                    absl::StrFormat("%.2f%%", 100.0 * c.pixels() / total), c.label()});
  }
  return absl::StrCat(file, ": ", response.width(), "x", response.height(), ", ",
                      response.class_pixels_size(), " classes",
                      response.label_png().empty()
                          ? ""
                          : absl::StrCat(", label map ", response.label_png().size(), " bytes"),
                      ", ", TimingSummary(response.metadata()), "\n",
                      FormatTable(rows, {true, true, true, false}, "  "));
}

std::string ModelsTable(const pb::ListModelsResponse& response) {
  std::vector<std::vector<std::string>> rows = {{"name", "task", "default", "version",
                                                 "architecture", "input", "classes", "devices",
                                                 "precision", "max batch", "weights"}};
  for (const pb::ModelInfo& m : response.models()) {
    rows.push_back({m.name(), std::string(ProtoTaskName(m.task())), m.is_default() ? "yes" : "",
                    m.version(), m.architecture(),
                    absl::StrCat(m.input_width(), "x", m.input_height()),
                    absl::StrCat(m.class_names_size()), absl::StrJoin(m.devices(), ","),
                    m.precision(), absl::StrCat(m.batching().max_batch_size()),
                    m.real_weights() ? m.weights_source()
                                     : absl::StrCat(m.weights_source(),
                                                    " (random: answers are "
                                                    "meaningless)")});
  }
  return FormatTable(rows,
                     {false, false, false, false, false, false, true, false, false, true, false});
}

// The protobuf JSON form of `message` (proto field names, fields at their defaults included), as
// a JSON value; null if protobuf cannot print it.
Json ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) return nullptr;
  Json value = Json::parse(json, nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? Json(nullptr) : value;
}

// The --json document as printed: indented by two spaces, one trailing newline. Bytes that are
// not UTF-8 (a file name, a server message) become U+FFFD, so the output is always valid JSON.
std::string DumpJson(const Json& document) {
  return document.dump(2, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace) + "\n";
}

// Sets "ok": false and the error of one image in `result`; `local` marks a failure before any
// call (the file could not be read or decoded).
void AddError(Json& result, grpc::StatusCode code, absl::string_view message, bool local) {
  result["ok"] = false;
  Json& error = result["error"];
  error["code"] = StatusCodeName(code);
  error["message"] = std::string(message);
  error["local"] = local;
}

void PrintRpcError(std::ostream& err, absl::string_view what, const grpc::Status& status) {
  err << what << ": " << StatusCodeName(status.error_code()) << ": " << status.error_message()
      << "\n";
}

std::chrono::system_clock::time_point DeadlineFrom(const CliConfig& config) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(config.deadline);
}

// Picks "<stem>.<command>.png" in `dir`, adding -2, -3 ... when an earlier input took the name.
std::string VisualizationPath(const std::string& dir, const std::string& input,
                              absl::string_view command, std::set<std::string>& used) {
  const std::string stem = fs::path(input).stem().string();
  std::string name = absl::StrCat(stem, ".", command, ".png");
  for (int n = 2; used.count(name) > 0; ++n) {
    name = absl::StrCat(stem, "-", n, ".", command, ".png");
  }
  used.insert(name);
  return (fs::path(dir) / name).string();
}

int RunModels(const CliConfig& config, const std::shared_ptr<grpc::Channel>& channel,
              std::ostream& out, std::ostream& err) {
  auto stub = pb::VisionService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(DeadlineFrom(config));
  pb::ListModelsResponse response;
  const grpc::Status status = stub->ListModels(&context, pb::ListModelsRequest(), &response);
  if (!status.ok()) {
    PrintRpcError(err, config.channel.target, status);
    return ExitCodeForRpc(status.error_code());
  }
  if (config.json) {
    Json document;
    document["target"] = config.channel.target;
    Json& models = document["models"] = Json::array();
    for (const pb::ModelInfo& model : response.models()) models.push_back(ToJson(model));
    out << DumpJson(document);
  } else {
    out << ModelsTable(response);
  }
  return kExitOk;
}

int RunHealth(const CliConfig& config, const std::shared_ptr<grpc::Channel>& channel,
              std::ostream& out, std::ostream& err) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(DeadlineFrom(config));
  HealthCheckRequest request;
  request.set_service(config.health_service);
  HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    PrintRpcError(err, config.channel.target, status);
    return ExitCodeForRpc(status.error_code());
  }
  const std::string name = HealthCheckResponse::ServingStatus_Name(response.status());
  if (config.json) {
    Json document;
    document["target"] = config.channel.target;
    document["service"] = config.health_service;
    document["status"] = name;
    out << DumpJson(document);
  } else {
    out << config.channel.target << ": " << name << "\n";
  }
  return response.status() == HealthCheckResponse::SERVING ? kExitOk : kExitNotServing;
}

// One image's call: the answer (or failure) and how to print and draw it.
struct Answer {
  grpc::Status status;
  std::unique_ptr<google::protobuf::Message> response;
};

Answer Call(pb::VisionService::Stub& stub, const CliConfig& config, const pb::Image& image) {
  grpc::ClientContext context;
  context.set_deadline(DeadlineFrom(config));
  Answer answer;
  switch (config.command) {
    case CliCommand::kDetect: {
      auto response = std::make_unique<pb::DetectResponse>();
      answer.status =
          stub.Detect(&context, MakeDetectRequest(config.request, image), response.get());
      answer.response = std::move(response);
      break;
    }
    case CliCommand::kSegment: {
      auto response = std::make_unique<pb::SegmentResponse>();
      answer.status =
          stub.Segment(&context, MakeSegmentRequest(config.request, image), response.get());
      answer.response = std::move(response);
      break;
    }
    default: {
      auto response = std::make_unique<pb::ClassifyResponse>();
      answer.status =
          stub.Classify(&context, MakeClassifyRequest(config.request, image), response.get());
      answer.response = std::move(response);
      break;
    }
  }
  return answer;
}

std::string AnswerTable(const CliConfig& config, const std::string& file, const Answer& answer) {
  switch (config.command) {
    case CliCommand::kDetect:
      return DetectTable(file, static_cast<const pb::DetectResponse&>(*answer.response));
    case CliCommand::kSegment:
      return SegmentTable(file, static_cast<const pb::SegmentResponse&>(*answer.response));
    default:
      return ClassifyTable(file, static_cast<const pb::ClassifyResponse&>(*answer.response));
  }
}

absl::StatusOr<cv::Mat> Draw(const CliConfig& config, const cv::Mat& image, const Answer& answer) {
  switch (config.command) {
    case CliCommand::kDetect:
      return DrawDetections(image, static_cast<const pb::DetectResponse&>(*answer.response));
    case CliCommand::kSegment:
      return DrawSegmentation(image, static_cast<const pb::SegmentResponse&>(*answer.response));
    default:
      return DrawClassification(image, static_cast<const pb::ClassifyResponse&>(*answer.response));
  }
}

int RunInference(const CliConfig& config, const std::shared_ptr<grpc::Channel>& channel,
                 std::ostream& out, std::ostream& err) {
  auto files = ExpandImagePaths(config.inputs);
  if (!files.ok()) {
    err << files.status().message() << "\n";
    return kExitIo;
  }
  if (!config.visualize_dir.empty()) {
    std::error_code ec;
    fs::create_directories(config.visualize_dir, ec);
    if (ec || !fs::is_directory(config.visualize_dir)) {
      err << "--visualize: cannot create directory '" << config.visualize_dir
          << "': " << ec.message() << "\n";
      return kExitIo;
    }
  }
  const std::string command(TaskCommandName(TaskOfCommand(config.command)));
  auto stub = pb::VisionService::NewStub(channel);
  Json document;
  document["command"] = command;
  document["target"] = config.channel.target;
  Json& results = document["results"] = Json::array();
  int exit_code = kExitOk;
  auto fail = [&exit_code](int code) {
    if (exit_code == kExitOk) exit_code = code;
  };
  std::set<std::string> used_names;
  for (size_t i = 0; i < files->size(); ++i) {
    const std::string& file = (*files)[i];
    Json& result = results.emplace_back();
    result["file"] = file;
    auto bytes = common::ReadFile("image", file);
    cv::Mat decoded;
    absl::Status local = bytes.status();
    if (local.ok() &&
        (config.request.raw || config.request.tensor_size > 0 || !config.visualize_dir.empty())) {
      auto image = DecodeImage(file, *bytes);
      if (image.ok()) {
        decoded = *std::move(image);
      } else {
        local = image.status();
      }
    }
    if (!local.ok()) {
      err << file << ": " << local.message() << "\n";
      AddError(result, static_cast<grpc::StatusCode>(local.code()), local.message(), true);
      fail(kExitIo);
      continue;
    }
    pb::Image image;
    if (config.request.raw) {
      SetRawImage(decoded, &image);
    } else if (config.request.tensor_size > 0) {
      SetNormalizedTensor(decoded, config.request.tensor_size, &image);
    } else {
      image.set_encoded(*std::move(bytes));
    }
    const Answer answer = Call(*stub, config, image);
    if (!answer.status.ok()) {
      PrintRpcError(err, file, answer.status);
      AddError(result, answer.status.error_code(), answer.status.error_message(), false);
      fail(ExitCodeForRpc(answer.status.error_code()));
      if (answer.status.error_code() == grpc::StatusCode::UNAVAILABLE && i + 1 < files->size()) {
        err << "stopping: the server is unavailable; " << files->size() - i - 1
            << " image(s) not sent\n";
        break;
      }
      continue;
    }
    result["ok"] = true;
    result["response"] = ToJson(*answer.response);
    if (!config.json) out << AnswerTable(config, file, answer);
    if (!config.visualize_dir.empty()) {
      const std::string path = VisualizationPath(config.visualize_dir, file, command, used_names);
      auto picture = Draw(config, decoded, answer);
      absl::Status written = picture.ok() ? WritePng(path, *picture) : picture.status();
      if (written.ok()) {
        result["visualization"] = path;
        if (!config.json) out << "  picture: " << path << "\n";
      } else {
        err << file << ": --visualize: " << written.message() << "\n";
        fail(kExitIo);
      }
    }
  }
  if (config.json) out << DumpJson(document);
  return exit_code;
}

}  // namespace

int RunCli(const CliConfig& config, std::ostream& out, std::ostream& err) {
  auto channel = CreateChannel(config.channel);
  if (!channel.ok()) {
    err << channel.status().message() << "\n";
    return kExitIo;
  }
  switch (config.command) {
    case CliCommand::kModels:
      return RunModels(config, *channel, out, err);
    case CliCommand::kHealth:
      return RunHealth(config, *channel, out, err);
    default:
      return RunInference(config, *channel, out, err);
  }
}

}  // namespace iis::client
