#include "client/common/channel.h"

#include <chrono>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/command_line.h"
#include "common/file_io.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace iis::client {
namespace {

const char* ConnectivityName(grpc_connectivity_state state) {
  switch (state) {
    case GRPC_CHANNEL_IDLE:
      return "IDLE";
    case GRPC_CHANNEL_CONNECTING:
      return "CONNECTING";
    case GRPC_CHANNEL_READY:
      return "READY";
    case GRPC_CHANNEL_TRANSIENT_FAILURE:
      return "TRANSIENT_FAILURE";
    case GRPC_CHANNEL_SHUTDOWN:
      return "SHUTDOWN";
  }
  return "UNKNOWN";
}

}  // namespace

void AddChannelOptions(CLI::App& app, TargetCount count, ChannelFlags* flags) {
  using common::FlagNames;
  const std::string group = "Connection";
  const bool several = count == TargetCount::kSeveral;
  common::AddListOption(
      app, "target", several ? "HOST:PORT[,...]" : "HOST:PORT",
      several ? absl::StrCat("Server address, or any gRPC target URI such as dns:///name:port. "
                             "Repeat (or comma-separate) to drive a fleet: calls rotate over the "
                             "targets, and a name that resolves to several addresses is spread "
                             "over all of them (round_robin). Nothing else is ever contacted "
                             "(default ",
                             kDefaultTarget, ").")
              : absl::StrCat("Server address, or any gRPC target URI such as dns:///name:port "
                             "(default ",
                             kDefaultTarget, ")."),
      [flags](absl::string_view item) {
        std::string target(item);
        absl::Status valid = ValidateTarget(target);
        if (valid.ok()) flags->targets.push_back(std::move(target));
        return valid;
      })
      ->group(group);
  app.add_flag(FlagNames("tls"), flags->tls, "Use TLS (implied by the certificate options).")
      ->group(group);
  app.add_option(FlagNames("ca-cert"), flags->ca_cert_file,
                 "PEM root certificates that verify the server (default: the system's).")
      ->type_name("FILE")
      ->group(group);
  app.add_option(FlagNames("client-cert"), flags->client_cert_file,
                 "PEM client certificate chain, for mutual TLS (needs --client-key).")
      ->type_name("FILE")
      ->group(group);
  app.add_option(FlagNames("client-key"), flags->client_key_file,
                 "PEM private key of the client certificate.")
      ->type_name("FILE")
      ->group(group);
  app.add_option(FlagNames("server-name"), flags->server_name,
                 "Name to verify in the server's certificate instead of the target's host.")
      ->type_name("NAME")
      ->group(group);
}

absl::Status ApplyTlsFlags(const ChannelFlags& flags, ChannelOptions* options) {
  options->ca_cert_file = flags.ca_cert_file;
  options->client_cert_file = flags.client_cert_file;
  options->client_key_file = flags.client_key_file;
  options->server_name = flags.server_name;
  options->tls = flags.tls || !options->ca_cert_file.empty() ||
                 !options->client_cert_file.empty() || !options->client_key_file.empty();
  if (options->client_cert_file.empty() != options->client_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--client-cert and --client-key: expected both (mutual TLS) or neither, got only " +
        std::string(options->client_cert_file.empty() ? "--client-key" : "--client-cert"));
  }
  if (!options->server_name.empty() && !options->tls) {
    return absl::InvalidArgumentError(
        "--server-name: only meaningful with TLS, add --tls (or --ca-cert)");
  }
  return absl::OkStatus();
}

absl::Status ValidateTarget(const std::string& target) {
  for (const char* scheme : {"dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:"}) {
    if (absl::StartsWith(target, scheme) && target.size() > strlen(scheme)) {
      return absl::OkStatus();
    }
  }
  const size_t colon = target.rfind(':');
  int port = 0;
  const bool valid =
      colon != std::string::npos && colon > 0 &&
      absl::SimpleAtoi(absl::string_view(target).substr(colon + 1), &port) && port >= 1 &&
      port <= 65535 &&
      // A host with a colon is an IPv6 address, which must be bracketed: [::1]:50051.
      (target.find(':') == colon || (target.front() == '[' && target[colon - 1] == ']'));
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--target: expected HOST:PORT (e.g. localhost:50051, [::1]:50051) or a gRPC target URI "
        "such as dns:///name:port, got '",
        target, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const ChannelOptions& options) {
  if (absl::Status valid = ValidateTarget(options.target); !valid.ok()) return valid;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  args.SetMaxSendMessageSize(-1);
  // Only ever talk to the addresses the target names: no service config (which could name
  // other balancers or policies) from DNS TXT records.
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  if (options.round_robin) args.SetLoadBalancingPolicyName("round_robin");
  if (options.connection_id != 0) {
    // A distinct argument set and a local subchannel pool give this channel its own connections.
    args.SetInt("iis.connection_id", options.connection_id);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_cert_file.empty()) {
      auto roots = common::ReadFile("--ca-cert", options.ca_cert_file);
      if (!roots.ok()) return roots.status();
      ssl.pem_root_certs = *std::move(roots);
    }
    if (!options.client_cert_file.empty()) {
      auto chain = common::ReadFile("--client-cert", options.client_cert_file);
      if (!chain.ok()) return chain.status();
      auto key = common::ReadFile("--client-key", options.client_key_file);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *std::move(chain);
      ssl.pem_private_key = *std::move(key);
    }
    if (!options.server_name.empty()) args.SetSslTargetNameOverride(options.server_name);
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  return grpc::CreateCustomChannel(options.target, credentials, args);
}

absl::Status WaitForReady(grpc::Channel& channel, const std::string& target,
                          absl::Duration timeout) {
  const auto deadline = std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout);
  for (;;) {
    const grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) return absl::OkStatus();
    // A refused or failed connection ends the wait at once: retrying is the caller's choice.
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      return absl::UnavailableError(absl::StrCat("cannot connect to '", target, "' (channel state ",
                                                 ConnectivityName(state), ")"));
    }
    if (!channel.WaitForStateChange(state, deadline)) {
      return absl::UnavailableError(absl::StrCat("cannot connect to '", target, "' within ",
                                                 absl::FormatDuration(timeout), " (channel state ",
                                                 ConnectivityName(state), ")"));
    }
  }
}

}  // namespace iis::client
