#include "server/frontend/server.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "internimage/serving/v1/vision.grpc.pb.h"

namespace iis {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& field, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    return absl::NotFoundError(
        absl::StrCat(field, ": cannot read \"", path, "\": ", std::strerror(errno)));
  }
  std::stringstream pem;
  pem << in.rdbuf();
  if (!absl::StrContains(pem.str(), "-----BEGIN ")) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", path, "\" is not a PEM file (no -----BEGIN line)"));
  }
  return pem.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeCredentials(
    const ServerOptions& options) {
  if (options.tls_cert_file.empty() && options.tls_key_file.empty()) {
    if (!options.tls_client_ca_file.empty()) {
      return absl::InvalidArgumentError("tls client CA file given without cert and key files");
    }
    return grpc::InsecureServerCredentials();
  }
  if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("tls cert and key files must be given together");
  }
  absl::StatusOr<std::string> cert = ReadPem("tls cert file", options.tls_cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem("tls key file", options.tls_key_file);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (!options.tls_client_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("tls client CA file", options.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  ssl.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

ServerOptions ServerOptionsFromConfig(const ServerConfig& config) {
  ServerOptions options;
  options.listen_address = config.listen_address();
  options.max_message_bytes = config.limits().max_message_bytes();
  options.image_limits.max_pixels = config.limits().max_image_pixels();
  options.image_limits.max_side = config.limits().max_image_side();
  options.tls_cert_file = config.tls().cert_file();
  options.tls_key_file = config.tls().key_file();
  options.tls_client_ca_file = config.tls().client_ca_file();
  return options;
}

VisionServer::VisionServer(const ServerOptions& options, Metrics* metrics)
    : service_(options.image_limits, metrics) {}

absl::StatusOr<std::unique_ptr<VisionServer>> VisionServer::Create(const ServerOptions& options,
                                                                   Metrics* metrics) {
  if (absl::StatusOr<HostPort> address = SplitListenAddress(options.listen_address);
      !address.ok()) {
    return address.status();
  }
  if (options.max_message_bytes < 1 ||
      options.max_message_bytes > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_message_bytes must be in [1, 2147483647], got ", options.max_message_bytes));
  }
  if (options.image_limits.max_pixels < 1 || options.image_limits.max_side < 1) {
    return absl::InvalidArgumentError("image limits must be >= 1");
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = MakeCredentials(options);
  if (!credentials.ok()) return credentials.status();

  std::unique_ptr<VisionServer> server(new VisionServer(options, metrics));
  // Process-wide switches; both only affect servers built after them.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Without this a second server could share a port that is in use (SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  builder.AddListeningPort(options.listen_address, *credentials, &server->port_);
  builder.RegisterService(&server->service_);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_address,
                                               " (port in use, or no such address?)"));
  }
  server->SetHealth(false);
  return server;
}

VisionServer::~VisionServer() {
  if (server_ != nullptr) Drain(absl::ZeroDuration()).IgnoreError();
}

void VisionServer::SetHealth(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus("", serving);
  health->SetServingStatus(internimage::serving::v1::VisionService::service_full_name(), serving);
}

absl::Status VisionServer::AttachEngine(std::unique_ptr<Engine> engine) {
  absl::MutexLock lock(&mu_);
  if (draining_) return absl::FailedPreconditionError("the server is draining");
  if (engine_ != nullptr) return absl::FailedPreconditionError("an engine is already attached");
  if (absl::Status status = service_.AttachEngine(engine.get()); !status.ok()) return status;
  engine_ = std::move(engine);
  SetHealth(true);
  return absl::OkStatus();
}

absl::Status VisionServer::Drain(absl::Duration grace) {
  const absl::Time deadline = absl::Now() + grace;
  Engine* engine;
  {
    absl::MutexLock lock(&mu_);
    if (draining_) return absl::OkStatus();
    draining_ = true;
    engine = engine_.get();
  }
  service_.StartDrain();
  // NOT_SERVING for every service name, and later SetServingStatus calls are ignored.
  server_->GetHealthCheckService()->Shutdown();
  absl::Status status = absl::OkStatus();
  if (engine != nullptr) status = engine->Drain(grace);
  // Let the answers go out; then only streams of other services (health Watch, reflection) can
  // be open, and they would otherwise hold the shutdown for the whole grace period.
  if (!service_.WaitForCalls(deadline) && status.ok()) {
    status = absl::DeadlineExceededError("vision calls were still open when the grace ran out");
  }
  server_->Shutdown(absl::ToChronoTime(absl::Now()));
  return status;
}

}  // namespace iis
