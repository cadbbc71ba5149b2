#include "common/thread_pool.h"

#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"

namespace iis::common {
namespace {

// The pool whose worker the current thread is (null on other threads).
thread_local const ThreadPool* tls_worker_of = nullptr;

}  // namespace

absl::StatusOr<std::unique_ptr<ThreadPool>> ThreadPool::Create(const Options& options) {
  if (options.num_threads < 1 || options.num_threads > Options::kMaxThreads) {
    return absl::InvalidArgumentError(
        absl::StrCat("ThreadPool::Options.num_threads must be in [1, ", Options::kMaxThreads,
                     "], got ", options.num_threads));
  }
  auto pool = absl::WrapUnique(new ThreadPool);
  pool->threads_.reserve(options.num_threads);
  for (int i = 0; i < options.num_threads; ++i) {
    pool->threads_.emplace_back([raw = pool.get()] { raw->Work(); });
  }
  return pool;
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
}

void ThreadPool::Schedule(Closure fn) {
  if (!fn) return;
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(fn));
}

bool ThreadPool::IsWorkerThread() const { return tls_worker_of == this; }

void ThreadPool::Work() {
  tls_worker_of = this;
  for (;;) {
    Closure fn;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, nothing left
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    std::move(fn)();
  }
}

}  // namespace iis::common
