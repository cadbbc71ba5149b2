// A fixed-size pool of worker threads running closures in FIFO order.
//
// The runtime uses one for the CPU-bound stages around the batcher (decode, preprocess,
// postprocess), so that this work runs in parallel and never on a batch thread, and a one-thread
// pool as the executor of all LibTorch CPU work (see server/runtime/libtorch_models.cc for why).
// Closures are move-only callables (absl::AnyInvocable), so work that owns move-only state (a
// request, a queue reservation) is scheduled as it is.
#pragma once

#include <deque>
#include <future>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace iis::common {

// Thread-safe: Schedule() and RunAndWait() may be called from any thread, including the pool's
// own workers.
class ThreadPool {
 public:
  using Closure = absl::AnyInvocable<void() &&>;

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

  // Queues `fn` to run once on a worker; closures start in the order they were scheduled. An empty
  // `fn` is ignored. `fn` must not throw.
  void Schedule(Closure fn);

  // Runs `fn` on a worker and returns its result, or rethrows what it threw; blocks the caller
  // meanwhile. Called from one of this pool's workers, it runs `fn` inline (a one-thread pool would
  // otherwise wait for itself).
  template <typename Fn>
  auto RunAndWait(Fn&& fn) -> std::invoke_result_t<Fn&>;

  // Returns true when the calling thread is one of this pool's workers.
  bool IsWorkerThread() const;

  // Returns the number of worker threads.
  int num_threads() const { return static_cast<int>(threads_.size()); }

 private:
  ThreadPool() = default;
  // Body of each worker: run queued closures until the pool stops and the queue is empty.
  void Work();

  absl::Mutex mu_;
  std::deque<Closure> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // set by Create() before any worker runs a closure
};

template <typename Fn>
auto ThreadPool::RunAndWait(Fn&& fn) -> std::invoke_result_t<Fn&> {
  using Result = std::invoke_result_t<Fn&>;
  if (IsWorkerThread()) return fn();
  std::packaged_task<Result()> task(std::forward<Fn>(fn));
  std::future<Result> result = task.get_future();
  Schedule([task = std::move(task)]() mutable { task(); });
  return result.get();
}

}  // namespace iis::common
