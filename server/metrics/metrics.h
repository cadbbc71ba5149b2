// Prometheus metrics of the server: prometheus-cpp instruments, served as text exposition on
// GET /metrics by a small HTTP endpoint of our own (server/metrics/http_endpoint.h).
//
// Names are in base units with unit suffixes, counters end in _total, labels are bounded
// (model, method, code, device). Histograms, not summaries, so fleets can be aggregated.
// Thread-safe: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace iis {

// Per-model instruments, created once per model so the request path does no label lookups.
class ModelMetrics {
 public:
  virtual ~ModelMetrics() = default;
  // Observes one request's time in the queue / in preprocessing / in postprocessing.
  virtual void ObserveQueue(absl::Duration d) = 0;
  virtual void ObservePreprocess(absl::Duration d) = 0;
  virtual void ObservePostprocess(absl::Duration d) = 0;
  // Observes one forward pass: its duration and how many requests it carried.
  virtual void ObserveBatch(absl::Duration inference, int batch_size) = 0;
  // Adds `delta` to the number of requests accepted and not yet running (preprocessing + queued).
  virtual void AddQueueDepth(int delta) = 0;
  // Sets the time it took to load (build, read weights, warm up) the model.
  virtual void SetLoadTime(absl::Duration d) = 0;
  // Sets the most requests the model admits at a time (batching max_queue_size), exported as
  // iis_queue_capacity so that queue depth can be read as a share of it.
  virtual void SetQueueCapacity(int capacity) = 0;
};

class Metrics {
 public:
  struct Options {
    // Port of the /metrics HTTP endpoint; 0 picks a free port (see port()); -1 serves nothing
    // (instruments still work, e.g. for tests that read Serialize()).
    int port = 8002;
    std::string bind_address = "0.0.0.0";
  };

  // Starts the exposer. Fails with UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Metrics>> Create(const Options& options);
  virtual ~Metrics() = default;

  // Returns the bound port, or -1 when nothing is served.
  virtual int port() const = 0;

  // Returns the instruments of `model` (created on first use; the pointer lives as long as this).
  virtual ModelMetrics* ForModel(const std::string& model) = 0;

  // Counts one finished RPC and observes its end-to-end latency. `code` is the canonical gRPC
  // status name ("OK", "INVALID_ARGUMENT", ...); `method` is the RPC name ("Classify", ...).
  virtual void ObserveRequest(const std::string& model, const std::string& method,
                              const std::string& code, absl::Duration latency) = 0;
  // Adds `delta` to the RPCs currently being handled for (model, method).
  virtual void AddInFlight(const std::string& model, const std::string& method, int delta) = 0;

  // Registers a source of per-device GPU memory figures, sampled at each scrape:
  // fn() returns {device name, allocated bytes, reserved bytes} per device.
  struct GpuMemory {
    std::string device;
    int64_t allocated_bytes = 0;
    int64_t reserved_bytes = 0;
  };
  virtual void SetGpuMemorySource(std::function<std::vector<GpuMemory>()> fn) = 0;

  // Returns the current exposition text (what /metrics serves).
  virtual std::string Serialize() const = 0;
};

}  // namespace iis
