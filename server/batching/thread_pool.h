// A fixed-size pool of worker threads running closures in FIFO order.
//
// The runtime uses it for the CPU-bound stages around the batcher (decode, preprocess,
// postprocess), so that this work runs in parallel and never on a batch thread.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace iis {

// Thread-safe: Schedule() may be called from any thread, including the pool's own workers.
class ThreadPool {
 public:
  struct Options {
    // Number of worker threads. Constraint: 1 .. kMaxThreads. Default 1.
    int num_threads = 1;
    static constexpr int kMaxThreads = 1024;
  };

  // Starts `options.num_threads` workers. INVALID_ARGUMENT when num_threads is out of range.
  static absl::StatusOr<std::unique_ptr<ThreadPool>> Create(const Options& options);

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs every closure already scheduled (and any they schedule in turn), then joins the workers.
  // Must not be called from a worker, nor while another thread may still call Schedule().
  ~ThreadPool();

  // Queues `fn` to run on a worker; closures start in the order they were scheduled. An empty `fn`
  // is ignored. `fn` must not throw.
  void Schedule(std::function<void()> fn);

  // Returns the number of worker threads.
  int num_threads() const { return static_cast<int>(threads_.size()); }

 private:
  ThreadPool() = default;
  // Body of each worker: run queued closures until the pool stops and the queue is empty.
  void Work();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // set by Create() before any worker runs a closure
};

}  // namespace iis
