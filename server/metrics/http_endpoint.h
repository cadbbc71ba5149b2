// A minimal HTTP/1.1 endpoint that serves GET /metrics (Prometheus text exposition).
//
// Why not prometheus-cpp's pull Exposer: Debian builds its civetweb with 100 KB thread stacks, and
// in a process that also loads LibTorch (whose libraries bring a large static TLS block) creating
// those threads fails ("Cannot create first worker thread"), so the exposer cannot start inside
// internimage-server. This endpoint runs one thread with a normal stack and answers requests one
// at a time (Prometheus scrapes are rare and small): GET /metrics -> 200 with render(); GET / ->
// 200 with a pointer to /metrics; other paths 404, other methods 405. Requests larger than 16 KiB
// or slower than 5 s are dropped. Thread-safe: `render` is called on the endpoint's thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace iis {

class MetricsHttpEndpoint {
 public:
  // Binds `bind_address`:`port` (port 0 picks a free one) and starts serving. Errors:
  // UNAVAILABLE when the address cannot be bound, INVALID_ARGUMENT for a bad address.
  static absl::StatusOr<std::unique_ptr<MetricsHttpEndpoint>> Start(
      const std::string& bind_address, int port, std::function<std::string()> render);
  // Stops serving and joins the thread.
  ~MetricsHttpEndpoint();

  // Returns the bound port.
  int port() const { return port_; }

 private:
  MetricsHttpEndpoint(int fd, int port, std::function<std::string()> render);
  void Serve();
  void HandleConnection(int client);

  const int listen_fd_;
  const int port_;
  const std::function<std::string()> render_;
  int wake_pipe_[2] = {-1, -1};
  std::thread thread_;
};

}  // namespace iis
