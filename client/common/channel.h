// gRPC channels to internimage-serving: plaintext or TLS (optionally mutual), with the options
// both client tools share (--target, --tls, --ca-cert, --client-cert, --client-key,
// --server-name), declared once here. A channel only connects to the addresses its target resolves
// to (DNS A/AAAA); service configs from DNS are ignored.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"

namespace iis::client {

// The server both tools call when no --target is given.
inline constexpr char kDefaultTarget[] = "localhost:50051";

struct ChannelOptions {
  // HOST:PORT, or any gRPC target URI (dns:///name:port, ipv4:..., unix:/path).
  std::string target = kDefaultTarget;
  // Use TLS. Implied by any of the certificate options below.
  bool tls = false;
  // PEM file with the root certificates that verify the server; empty: the system's roots.
  std::string ca_cert_file;
  // PEM certificate chain and private key presented to the server (mutual TLS): both or neither.
  std::string client_cert_file;
  std::string client_key_file;
  // Name checked against the server's certificate instead of the target's host (TLS only).
  std::string server_name;
  // Spread calls over every address the target resolves to (grpc's round_robin LB policy)
  // instead of sticking to the first one that connects.
  bool round_robin = false;
  // Channels with different ids never share a connection (a load generator opens several).
  int connection_id = 0;
  // Largest answer accepted, in bytes (detection masks and label maps of large images are big).
  int max_receive_message_bytes = 256 << 20;
};

// Checks a --target value: HOST:PORT (port 1..65535; an IPv6 host in brackets) or a gRPC target
// URI with an explicit scheme (dns:, ipv4:, ipv6:, unix:, ...). Fails with INVALID_ARGUMENT
// naming --target and the value otherwise (e.g. "localhost:" from an unset shell variable).
absl::Status ValidateTarget(const std::string& target);

// The connection options as given on a command line (AddChannelOptions fills them).
struct ChannelFlags {
  std::vector<std::string> targets;  // every --target item in the order given, each valid
  bool tls = false;                  // --tls
  std::string ca_cert_file;          // --ca-cert
  std::string client_cert_file;      // --client-cert
  std::string client_key_file;       // --client-key
  std::string server_name;           // --server-name
};

// How many servers a tool talks to: internimage-client one, internimage-loadgen a fleet.
enum class TargetCount { kOne, kSeveral };

// Declares the connection options on `app` (help group "Connection"), bound to `*flags`, which
// must outlive the parse: --target (a list option, see common/command_line.h: repeatable and
// comma-separated, every item checked by ValidateTarget while parsing; `count` only changes its
// help, the caller refuses several targets where it takes one), --tls, --ca-cert, --client-cert,
// --client-key and --server-name.
void AddChannelOptions(CLI::App& app, TargetCount count, ChannelFlags* flags);

// Sets the TLS settings of `options` from `flags` (the target excluded): TLS is on with --tls or
// any certificate option. Fails with INVALID_ARGUMENT naming the options when they are
// inconsistent (a client certificate without its key or the reverse, --server-name without TLS).
absl::Status ApplyTlsFlags(const ChannelFlags& flags, ChannelOptions* options);

// Creates a channel (it connects lazily). Fails with ValidateTarget's error for a malformed
// target and with the error of ReadFileToString when a certificate file cannot be read.
// Thread-safe.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const ChannelOptions& options);

// Connects `channel` now, waiting at most `timeout`. Fails with UNAVAILABLE naming `target` and
// the channel state as soon as a connection attempt fails (e.g. refused), or when the channel is
// not ready by the timeout.
absl::Status WaitForReady(grpc::Channel& channel, const std::string& target,
                          absl::Duration timeout);

}  // namespace iis::client
