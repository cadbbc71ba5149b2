// The asynchronous load driver: runs one step of a load test (closed or open loop) against a set
// of channels and measures it.
//
// Closed loop: `concurrency` calls are always in flight; each completion starts the next call at
// once, and latency runs from that send. Open loop: calls start at the intended times of an
// ArrivalSchedule, whether or not earlier ones have answered, and latency runs from the
// *intended* send time, so any delay in the generator itself (a late wake-up, the
// --max-outstanding cap) shows in the figures instead of being hidden.
//
// Calls use gRPC's callback API on pre-serialized requests (grpc::GenericStub): the open loop's
// sender thread(s) only start calls and gRPC's own threads complete them (and, in the closed
// loop, start the next), so one process sustains tens of thousands of calls per second.
// Calls rotate over the channels (one or more per --target), which spreads a run over a fleet;
// each channel may itself balance over the addresses its name resolves to.
//
// Every step stops by itself: at the end of its duration or after its request budget, after which
// it waits for the calls in flight (each bounded by the per-call deadline).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/loadgen/arrivals.h"
#include "client/loadgen/histogram.h"
#include "client/loadgen/workload.h"
#include "grpcpp/channel.h"
#include "grpcpp/generic/generic_stub.h"

namespace iis::client {

struct RunOptions {
  // Calls sent before this much time has passed count in no figure (warm caches, connections).
  absl::Duration warmup = absl::ZeroDuration();
  // Measured time after the warm-up; zero: no time limit (then `requests` must be set).
  absl::Duration duration = absl::ZeroDuration();
  // Measured calls to send; 0: no count limit (then `duration` must be set). With both set the
  // step ends at whichever comes first.
  int64_t requests = 0;
  // Deadline of each call, from its send.
  absl::Duration deadline = absl::Seconds(30);
  // Open loop only: the arrival process and its seed.
  ArrivalProcess arrivals = ArrivalProcess::kPoisson;
  uint64_t seed = 1;
  // Open loop only: at most this many calls in flight; the schedule waits (and its lateness is
  // measured) when the server falls this far behind.
  int max_outstanding = 10000;
  // Print a live progress line on stderr (elapsed, req/s, errors, current p50/p99) every second.
  bool progress = false;
  // When set and it becomes true (e.g. from a SIGINT handler), the step stops sending, waits for
  // the calls in flight and returns what it measured.
  const std::atomic<bool>* interrupt = nullptr;
};

// One step of a load test: exactly one of the two is > 0.
struct LoadStep {
  int concurrency = 0;  // closed loop
  double rate = 0;      // open loop, calls per second
};

// Server-side time per successful answer, averaged from the answers' ResponseMetadata.
struct ServerTiming {
  int64_t answers = 0;  // answers that carried metadata
  double queue_us = 0;
  double preprocess_us = 0;
  double inference_us = 0;
  double postprocess_us = 0;
  double total_us = 0;
  double batch_size = 0;
};

struct StepResult {
  LoadStep step;
  int64_t warmup_calls = 0;  // sent during the warm-up, in no other figure
  int64_t sent = 0;          // measured calls (sent after the warm-up)
  int64_t ok = 0;
  int64_t failed = 0;
  std::map<std::string, int64_t> errors;          // by status code name
  std::map<std::string, std::string> error_text;  // one message per status code
  std::vector<int64_t> ok_per_target;             // indexed like the targets
  std::vector<int64_t> failed_per_target;
  // From the end of the warm-up to the last measured answer.
  double elapsed_s = 0;
  double throughput_rps = 0;  // ok / elapsed_s
  // Successful calls only; from the intended send time (open loop) or the send (closed loop).
  LatencyHistogram latency;
  ServerTiming server;
  // Open loop: how late the generator sent calls relative to their intended times.
  double send_lag_mean_ms = 0;
  double send_lag_max_ms = 0;
  // This process's CPU time (user + system) during the step.
  double cpu_s = 0;
  // True when RunOptions::interrupt stopped the step early.
  bool interrupted = false;
};

// A channel and the index of the --target it belongs to.
struct Endpoint {
  std::shared_ptr<grpc::Channel> channel;
  int target_index = 0;
};

class LoadRunner {
 public:
  // `workload` must outlive the runner. `target_count` sizes the per-target figures.
  LoadRunner(const std::vector<Endpoint>& endpoints, int target_count, const Workload& workload,
             const RunOptions& options);
  ~LoadRunner();

  // Runs `step` to completion and returns its figures. Blocks; not reentrant.
  StepResult Run(const LoadStep& step);

 private:
  class Step;

  // One stub per endpoint (a stub is only a handle on its channel, which keeps it alive).
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  std::vector<int> target_of_stub_;
  int target_count_;
  const Workload& workload_;
  RunOptions options_;
};

}  // namespace iis::client
