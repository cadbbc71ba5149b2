// Overhead of the batching library on the real clock: what admission, batch formation and the
// hand-off to a batch thread cost per task, and a thread-pool round trip.
//
//   build-batching/bin/batching_bench --benchmark_min_time=0.5

#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "common/thread_pool.h"
#include "server/batching/batch_queue.h"

namespace iis {
namespace {

class NoopTask : public BatchTask {};

// Counts finished tasks and lets the benchmark wait for a total.
class Counter {
 public:
  void Add(int n) {
    absl::MutexLock lock(&mu_);
    count_ += n;
  }
  void WaitFor(int64_t n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ >= n; };
    mu_.Await(absl::Condition(&reached));
  }

 private:
  absl::Mutex mu_;
  int64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// One producer reserves and schedules bursts of kBurst tasks as fast as it can and waits until the
// batch threads have taken all of them (delay 0): end-to-end cost per task, formation included.
// Args: max_batch_size, num_instances.
void BM_ScheduleToProcess(benchmark::State& state) {
  constexpr int kBurst = 1000;
  BatchQueueOptions options;
  options.name = "bench";
  options.max_batch_size = static_cast<int>(state.range(0));
  options.num_instances = static_cast<int>(state.range(1));
  options.max_queue_size = kBurst;
  Counter done;
  absl::Mutex batches_mu;
  int64_t batches = 0;  // guarded by batches_mu
  auto queue = BatchQueue<NoopTask>::Create(
      options,
      [&](int, std::vector<std::unique_ptr<NoopTask>> batch) {
        {
          absl::MutexLock lock(&batches_mu);
          ++batches;
        }
        done.Add(static_cast<int>(batch.size()));
      },
      [&](std::unique_ptr<NoopTask>, absl::Status) { done.Add(1); });
  if (!queue.ok()) {
    state.SkipWithError(queue.status().ToString().c_str());
    return;
  }
  int64_t scheduled = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBurst; ++i) {
      absl::StatusOr<BatchReservation> slot = (*queue)->Reserve();
      if (!slot.ok()) {
        state.SkipWithError(slot.status().ToString().c_str());
        return;
      }
      (*queue)->Schedule(*std::move(slot), std::make_unique<NoopTask>());
    }
    scheduled += kBurst;
    done.WaitFor(scheduled);
  }
  state.SetItemsProcessed(scheduled);
  absl::MutexLock lock(&batches_mu);
  state.counters["mean_batch"] = static_cast<double>(scheduled) / static_cast<double>(batches);
}
BENCHMARK(BM_ScheduleToProcess)
    ->ArgNames({"max_batch", "instances"})
    ->Args({1, 1})
    ->Args({8, 1})
    ->Args({32, 1})
    ->Args({8, 2})
    ->UseRealTime();

// Admission alone: Reserve() and give the slot back.
void BM_ReserveRelease(benchmark::State& state) {
  auto queue = BatchQueue<NoopTask>::Create(
      BatchQueueOptions(), [](int, std::vector<std::unique_ptr<NoopTask>>) {},
      [](std::unique_ptr<NoopTask>, absl::Status) {});
  if (!queue.ok()) {
    state.SkipWithError(queue.status().ToString().c_str());
    return;
  }
  for (auto _ : state) {
    absl::StatusOr<BatchReservation> slot = (*queue)->Reserve();
    benchmark::DoNotOptimize(slot);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReserveRelease);

// Schedule() of an empty closure until it has run. Arg: num_threads.
void BM_ThreadPoolSchedule(benchmark::State& state) {
  common::ThreadPool::Options options;
  options.num_threads = static_cast<int>(state.range(0));
  auto pool = common::ThreadPool::Create(options);
  if (!pool.ok()) {
    state.SkipWithError(pool.status().ToString().c_str());
    return;
  }
  Counter done;
  int64_t scheduled = 0;
  for (auto _ : state) {
    (*pool)->Schedule([&done] { done.Add(1); });
    ++scheduled;
  }
  done.WaitFor(scheduled);
  state.SetItemsProcessed(scheduled);
}
BENCHMARK(BM_ThreadPoolSchedule)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
}  // namespace iis

BENCHMARK_MAIN();
