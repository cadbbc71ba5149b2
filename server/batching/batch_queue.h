// Dynamic batching: a per-model queue that groups tasks into batches for the model's execution
// instances, the way Triton's dynamic batcher and TensorFlow Serving's batch schedulers do.
//
// The library knows nothing of gRPC, LibTorch or Prometheus: a task is anything derived from
// BatchTask, batches go to a callback, and time comes from an injected Clock.
//
//   auto queue = BatchQueue<MyTask>::Create(options, process_batch, drop, RealClock());
//   absl::StatusOr<BatchReservation> slot = (*queue)->Reserve();  // RESOURCE_EXHAUSTED when full
//   ... preprocess the request (may take a while) ...
//   (*queue)->Schedule(*std::move(slot), std::move(task));
//
// Every scheduled task reaches exactly one of the two callbacks, exactly once: ProcessBatchFn
// (in a batch) or DropFn (with the reason it will not run).
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/batching/clock.h"

namespace iis {

// Base class of the tasks a BatchQueue carries (the runtime derives its request type from it).
// The queue calls these methods from its own threads; overrides must be thread-safe against the
// task's other users, fast and non-blocking, and must not call into the queue.
class BatchTask {
 public:
  virtual ~BatchTask() = default;

  // Returns the time from which the task must no longer start (it is expired when the queue's
  // clock reads deadline() or later). Read once, when the task is scheduled. Default: never.
  virtual absl::Time deadline() const { return absl::InfiniteFuture(); }

  // Returns true once whoever submitted the task has given up on it. Polled while a batch is being
  // formed (with the queue's lock held); a cancelled task is dropped instead of run. Default:
  // false.
  virtual bool IsCancelled() const { return false; }
};

// How a BatchQueue forms batches and admits work. Checked by ValidateBatchQueueOptions().
struct BatchQueueOptions {
  // Most tasks in one batch. Constraint: >= 1. Default 1 (no batching).
  int max_batch_size = 1;

  // How long the oldest queued task may wait for more tasks to join its batch, measured on the
  // queue's clock from its Schedule() call. When it has waited this long, everything queued (up to
  // max_batch_size) is dispatched as soon as an instance is free. Constraint: >= 0 and finite.
  // Default 0: whatever is queued is dispatched as soon as an instance is free.
  absl::Duration max_queue_delay = absl::ZeroDuration();

  // When true, max_queue_delay is only waited while more tasks are on their way: some slot is
  // reserved (a request admitted and still being prepared). With none reserved a partial batch
  // leaves at once, so a lone request never waits for company that is not coming (at concurrency
  // 1 this removes max_queue_delay from every request's latency), while under load, when requests
  // are being prepared, batches still fill up. Default false: always wait (Triton's behaviour).
  bool delay_only_while_tasks_are_reserved = false;

  // Batch sizes the model runs best at. When the queue can fill one of them, the largest it can
  // fill is dispatched at once instead of waiting for max_queue_delay. Constraint: strictly
  // ascending, each in [1, max_batch_size]. Default: none.
  std::vector<int> preferred_batch_sizes;

  // Most tasks reserved or queued at a time (tasks in a running batch no longer count); Reserve()
  // beyond it fails with RESOURCE_EXHAUSTED. An expired or cancelled task keeps its slot until a
  // batch thread removes it while forming a batch. Constraint: >= 1. Default 64.
  int max_queue_size = 64;

  // Number of batch threads, one per execution instance (model replica). Each runs one batch at a
  // time; the others keep forming batches meanwhile. Constraint: 1 .. kMaxInstances. Default 1.
  int num_instances = 1;
  static constexpr int kMaxInstances = 256;

  // A batch waiting for more tasks is dispatched at the latest this long before the earliest
  // deadline among its tasks, so that no task expires while it waits for company. Set it to about
  // the model's inference time. With 0 the batch leaves at that deadline, which the task has then
  // missed (it is dropped with DEADLINE_EXCEEDED). Constraint: >= 0 and finite. Default 1 ms.
  absl::Duration deadline_headroom = absl::Milliseconds(1);

  // Name of the model the queue serves, used in error messages. Default: empty.
  std::string name;
};

// One broken constraint of a BatchQueueOptions: the field as BatchQueueOptions names it (e.g.
// "max_batch_size", "preferred_batch_sizes[1]"), what it must be (e.g. ">= 1") and what it holds.
struct BatchQueueOptionProblem {
  std::string field;
  std::string must_be;
  std::string got;
};

// Returns every broken constraint of `options`, in field order; empty when the options are valid.
// The one home of the batching rules: ValidateBatchQueueOptions and the server configuration's
// validation (server/config) both report these. Thread-safe (pure function).
std::vector<BatchQueueOptionProblem> FindBatchQueueOptionProblems(const BatchQueueOptions& options);

// Returns OK, or INVALID_ARGUMENT naming the first field of `options` that breaks its constraint,
// what was expected and what it holds. Thread-safe (pure function).
absl::Status ValidateBatchQueueOptions(const BatchQueueOptions& options);

namespace batching_internal {
class BatchQueueCore;
}  // namespace batching_internal

// One admitted slot of a BatchQueue (see BatchQueue::Reserve), held while the request is prepared.
// Move-only RAII handle: passing it to BatchQueue::Schedule() fills the slot; destroying it unused
// gives the slot back. It must not outlive its queue. Not thread-safe (one owner at a time).
class BatchReservation {
 public:
  // An empty handle, holding no slot.
  BatchReservation() = default;
  BatchReservation(BatchReservation&& other) noexcept;
  // Gives back the slot this handle held, if any, and takes over `other`'s.
  BatchReservation& operator=(BatchReservation&& other) noexcept;
  BatchReservation(const BatchReservation&) = delete;
  BatchReservation& operator=(const BatchReservation&) = delete;
  ~BatchReservation();

  // Returns true while the handle holds a slot (not moved from, not used by Schedule()).
  bool holds_slot() const { return queue_ != nullptr; }

 private:
  friend class batching_internal::BatchQueueCore;
  explicit BatchReservation(batching_internal::BatchQueueCore* queue) : queue_(queue) {}
  void Release();

  batching_internal::BatchQueueCore* queue_ = nullptr;
};

namespace batching_internal {

// The type-erased engine behind BatchQueue<T>; see BatchQueue for the contract. Thread-safe.
class BatchQueueCore {
 public:
  using ProcessFn = std::function<void(int instance, std::vector<std::unique_ptr<BatchTask>>)>;
  using DropFn = std::function<void(std::unique_ptr<BatchTask>, absl::Status)>;

  // Validates the arguments and starts the batch threads. `clock` null means RealClock().
  static absl::StatusOr<std::unique_ptr<BatchQueueCore>> Create(const BatchQueueOptions& options,
                                                                ProcessFn process, DropFn drop,
                                                                Clock* clock);
  BatchQueueCore(const BatchQueueCore&) = delete;
  BatchQueueCore& operator=(const BatchQueueCore&) = delete;
  ~BatchQueueCore();

  absl::StatusOr<BatchReservation> Reserve();
  void Schedule(BatchReservation reservation, std::unique_ptr<BatchTask> task);
  int NumQueued() const;
  int NumReserved() const;
  const BatchQueueOptions& options() const { return options_; }
  absl::Status Drain(absl::Time deadline);

 private:
  friend class iis::BatchReservation;

  // A scheduled task and what the queue needs to know about it without calling into it.
  struct Entry {
    std::unique_ptr<BatchTask> task;
    absl::Time scheduled;
    absl::Time deadline;
  };
  // What a batch thread delivers after one formation: tasks to drop (first), then a batch.
  struct Formed {
    std::vector<std::pair<std::unique_ptr<BatchTask>, absl::Status>> dropped;
    std::vector<std::unique_ptr<BatchTask>> batch;
  };

  BatchQueueCore(const BatchQueueOptions& options, ProcessFn process, DropFn drop, Clock* clock);

  // Gives back one reserved slot (a BatchReservation dropped unused).
  void Release();
  // Body of batch thread `instance`: lead formation when free, deliver, repeat until drained.
  void Run(int instance);
  // Removes expired/cancelled tasks from the head of the queue and, when a batch is due, takes it;
  // otherwise waits on the clock for company or a deadline. Returns when something is to be
  // delivered, the queue is empty, or the queue stopped.
  Formed FormBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns the largest preferred batch size <= `live`, or 0.
  int LargestPreferredAtMost(int live) const;
  // True when a free batch thread should take the lead (or exit).
  bool CanLead() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Status DrainingStatus() const;

  const BatchQueueOptions options_;
  const ProcessFn process_;
  const DropFn drop_;
  Clock* const clock_;

  // Serialises Drain() calls; taken before mu_.
  absl::Mutex drain_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  bool drained_ ABSL_GUARDED_BY(drain_mu_) = false;
  absl::Status drain_status_ ABSL_GUARDED_BY(drain_mu_);
  // Started by Create(), joined by Drain().
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(drain_mu_);

  mutable absl::Mutex mu_;
  std::deque<Entry> queue_ ABSL_GUARDED_BY(mu_);  // in Schedule() order
  int reserved_ ABSL_GUARDED_BY(mu_) = 0;       // slots handed out, not yet scheduled or given back
  int in_progress_ ABSL_GUARDED_BY(mu_) = 0;    // batch threads delivering a formation
  bool forming_ ABSL_GUARDED_BY(mu_) = false;   // a batch thread leads formation
  bool draining_ ABSL_GUARDED_BY(mu_) = false;  // Drain() started: reserve nothing more
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;   // Drain() took over: batch threads exit
};

}  // namespace batching_internal

// A per-model dynamic batching queue: tasks are admitted in two steps (Reserve, then Schedule),
// grouped into batches of 1..max_batch_size in arrival order, and handed to `num_instances` batch
// threads, each running one batch at a time through ProcessBatchFn.
//
// Batch formation (by one free batch thread at a time), after dropping expired and cancelled tasks
// at the head of the queue:
//   - max_batch_size tasks queued: dispatch them at once;
//   - else, with preferred sizes: dispatch at once the largest preferred size the queue can fill;
//   - else (with delay_only_while_tasks_are_reserved: only while a slot is reserved, otherwise at
//     once) wait until the oldest task has waited max_queue_delay, or until deadline_headroom
//     before the earliest deadline among the waiting tasks, whichever comes first, then dispatch
//     all;
//   - while draining, dispatch whatever is queued without waiting.
//
// Callbacks run on the batch threads (DropFn also on the thread calling Schedule(), Drain() or the
// destructor), never under the queue's lock, so they may call Reserve()/Schedule(). They must not
// throw, and must not call Drain() or destroy the queue.
//
// Thread-safety: thread-safe; every method may be called from any thread. T must derive from
// BatchTask.
template <typename T>
class BatchQueue {
  static_assert(std::is_base_of_v<BatchTask, T>, "BatchQueue<T> needs T derived from BatchTask");

 public:
  using Reservation = BatchReservation;
  // Runs one batch on batch thread `instance` (0 .. num_instances-1): 1..max_batch_size live tasks
  // in arrival order. While it runs, that instance takes no other batch.
  using ProcessBatchFn = std::function<void(int instance, std::vector<std::unique_ptr<T>> batch)>;
  // Receives a task that will not run, with why:
  //   DEADLINE_EXCEEDED  its deadline was reached before it could be put in a batch (an expired
  //   task
  //                      is never handed to ProcessBatchFn);
  //   CANCELLED          IsCancelled() was true when its batch was formed;
  //   UNAVAILABLE        the queue had shut down (its drain deadline had passed) when it was
  //                      scheduled, or the drain deadline came before it ran;
  //   FAILED_PRECONDITION  Schedule() was given a Reservation that is empty or from another queue.
  using DropFn = std::function<void(std::unique_ptr<T> task, absl::Status status)>;

  // Validates `options` (see ValidateBatchQueueOptions) and the callbacks (INVALID_ARGUMENT when
  // one is empty), then starts the batch threads. `clock` (RealClock() when null) must outlive the
  // queue, as must whatever the callbacks use.
  static absl::StatusOr<std::unique_ptr<BatchQueue>> Create(const BatchQueueOptions& options,
                                                            ProcessBatchFn process_batch,
                                                            DropFn drop, Clock* clock = nullptr) {
    batching_internal::BatchQueueCore::ProcessFn process_core;
    if (process_batch) {
      process_core = [process_batch = std::move(process_batch)](
                         int instance, std::vector<std::unique_ptr<BatchTask>> tasks) {
        std::vector<std::unique_ptr<T>> batch;
        batch.reserve(tasks.size());
        // Every task entered through Schedule() as a T.
        for (auto& task : tasks) batch.emplace_back(static_cast<T*>(task.release()));
        process_batch(instance, std::move(batch));
      };
    }
    batching_internal::BatchQueueCore::DropFn drop_core;
    if (drop) {
      drop_core = [drop = std::move(drop)](std::unique_ptr<BatchTask> task, absl::Status status) {
        drop(std::unique_ptr<T>(static_cast<T*>(task.release())), std::move(status));
      };
    }
    auto core = batching_internal::BatchQueueCore::Create(options, std::move(process_core),
                                                          std::move(drop_core), clock);
    if (!core.ok()) return core.status();
    return std::unique_ptr<BatchQueue>(new BatchQueue(*std::move(core)));
  }

  // Drains with an immediate deadline: queued tasks are dropped with UNAVAILABLE, running batches
  // are waited for.
  ~BatchQueue() = default;

  // Takes one of the max_queue_size slots, at once. Errors: RESOURCE_EXHAUSTED "queue of model X is
  // full (N requests waiting)" when every slot is reserved or queued (retry later); UNAVAILABLE
  // once Drain() has started.
  absl::StatusOr<Reservation> Reserve() { return core_->Reserve(); }

  // Enqueues `task` into the slot held by `reservation` (from this queue's Reserve()); never fails.
  // A slot admitted before a drain started is still honoured during the drain. The task goes
  // straight to DropFn instead (on this thread) when the drain's deadline has passed
  // (UNAVAILABLE), when its deadline is already reached (DEADLINE_EXCEEDED), or when
  // `reservation` holds no slot of this queue (FAILED_PRECONDITION). A null `task` just gives the
  // slot back.
  void Schedule(Reservation reservation, std::unique_ptr<T> task) {
    core_->Schedule(std::move(reservation), std::move(task));
  }

  // Returns the number of tasks scheduled and not yet taken into a batch or dropped.
  int NumQueued() const { return core_->NumQueued(); }
  // Returns the number of slots in use: reserved but not yet scheduled, plus queued.
  int NumReserved() const { return core_->NumReserved(); }
  // Returns the options the queue was created with.
  const BatchQueueOptions& options() const { return core_->options(); }

  // Stops admitting work (Reserve() returns UNAVAILABLE) and finishes what was admitted: tasks
  // queued, and tasks whose slot was reserved before the drain and that are scheduled during it.
  // It dispatches them without waiting for company until nothing is queued, reserved or running,
  // or until the clock reaches `deadline`; then drops whatever is still queued with UNAVAILABLE
  // (as it does with reserved slots scheduled later), waits for the running batches and joins the
  // batch threads. Returns OK when all admitted work finished before `deadline`, DEADLINE_EXCEEDED
  // (counting the dropped and the unprepared requests) otherwise; FAILED_PRECONDITION when called
  // from a batch thread (a callback). Calls made during or after the first one wait for it and
  // return its result.
  absl::Status Drain(absl::Time deadline) { return core_->Drain(deadline); }

 private:
  explicit BatchQueue(std::unique_ptr<batching_internal::BatchQueueCore> core)
      : core_(std::move(core)) {}

  std::unique_ptr<batching_internal::BatchQueueCore> core_;
};

}  // namespace iis
