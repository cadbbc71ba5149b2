// The gRPC server of internimage-serving: VisionService, the standard health service
// (grpc.health.v1.Health) and server reflection on one listening port, with optional TLS.
//
// Lifecycle:
//   Create()       listens and answers at once, health NOT_SERVING; vision calls get UNAVAILABLE
//                  ("models are still loading") until an engine is attached
//   AttachEngine() serves the engine's models; health SERVING (overall "" and
//                  "internimage.serving.v1.VisionService")
//   Drain()        health NOT_SERVING at once, new vision calls UNAVAILABLE ("server is shutting
//                  down"), Engine::Drain for the work in flight, a wait (within the same grace
//                  period) until every vision answer is sent, then gRPC shutdown, which cancels
//                  what is left: long-lived streams of other services such as health Watch
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "server/config/server_config.h"
#include "server/engine/engine.h"
#include "server/frontend/image_header.h"
#include "server/frontend/vision_service.h"
#include "server/metrics/metrics.h"

namespace iis {

struct ServerOptions {
  // "host:port" or "[v6 host]:port"; port 0 picks a free port (see VisionServer::port()).
  std::string listen_address = "0.0.0.0:50051";
  // Largest request and answer message, bytes, in [1, 2^31 - 1].
  int64_t max_message_bytes = int64_t{64} << 20;
  // Image size limits checked from headers and raw tensor shapes before any decoding.
  ImageLimits image_limits;
  // PEM files; TLS is on when both are set.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM file of the CA that signs client certificates; set to require mutual TLS.
  std::string tls_client_ca_file;
};

// Returns the options a validated ServerConfig (defaults applied) describes.
ServerOptions ServerOptionsFromConfig(const ServerConfig& config);

class VisionServer {
 public:
  // Builds and starts the server, health NOT_SERVING. `metrics` is not owned and must outlive
  // the server. Errors: INVALID_ARGUMENT (bad options, TLS file not PEM), NOT_FOUND (TLS file
  // unreadable), UNAVAILABLE (the address cannot be bound, e.g. the port is in use).
  static absl::StatusOr<std::unique_ptr<VisionServer>> Create(const ServerOptions& options,
                                                              Metrics* metrics);

  // Drains with no grace period when Drain() was not called.
  ~VisionServer();

  VisionServer(const VisionServer&) = delete;
  VisionServer& operator=(const VisionServer&) = delete;

  // Returns the bound port.
  int port() const { return port_; }

  // Takes ownership of `engine`, serves its models and reports SERVING. Errors:
  // FAILED_PRECONDITION when an engine is already attached or the server is draining.
  absl::Status AttachEngine(std::unique_ptr<Engine> engine);

  // Stops the server gracefully within `grace` (see the lifecycle above) and returns when the
  // gRPC server has shut down. Returns OK when every accepted request was answered in time, else
  // DEADLINE_EXCEEDED (those cut off were answered UNAVAILABLE or cancelled). A second call
  // returns OK at once.
  absl::Status Drain(absl::Duration grace);

 private:
  VisionServer(const ServerOptions& options, Metrics* metrics);

  // Sets the health status of "" and of the VisionService name.
  void SetHealth(bool serving);

  VisionService service_;
  int port_ = 0;
  absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  // Destroyed before service_ (declared after it) and after server_ has shut down.
  std::unique_ptr<Engine> engine_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace iis
