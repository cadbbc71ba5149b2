#include "server/batching/batch_queue.h"

#include <algorithm>
#include <iterator>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace iis {
namespace {

// The queue whose batch thread this is (null elsewhere), so Drain() can refuse to join itself.
thread_local const batching_internal::BatchQueueCore* tls_batch_thread_of = nullptr;

}  // namespace

std::vector<BatchQueueOptionProblem> FindBatchQueueOptionProblems(
    const BatchQueueOptions& options) {
  std::vector<BatchQueueOptionProblem> problems;
  auto add = [&problems](std::string field, std::string must_be, std::string got) {
    problems.push_back({std::move(field), std::move(must_be), std::move(got)});
  };
  if (options.max_batch_size < 1)
    add("max_batch_size", ">= 1", absl::StrCat(options.max_batch_size));
  if (options.max_queue_delay < absl::ZeroDuration()) {
    add("max_queue_delay", ">= 0", absl::FormatDuration(options.max_queue_delay));
  } else if (options.max_queue_delay == absl::InfiniteDuration()) {
    add("max_queue_delay", "finite", absl::FormatDuration(options.max_queue_delay));
  }
  for (size_t i = 0; i < options.preferred_batch_sizes.size(); ++i) {
    const int size = options.preferred_batch_sizes[i];
    const std::string field = absl::StrCat("preferred_batch_sizes[", i, "]");
    if (size < 1 || size > options.max_batch_size) {
      add(field, absl::StrCat("in [1, max_batch_size = ", options.max_batch_size, "]"),
          absl::StrCat(size));
    } else if (i > 0 && size <= options.preferred_batch_sizes[i - 1]) {
      add(field,
          absl::StrCat("greater than the size before it (", options.preferred_batch_sizes[i - 1],
                       "): the sizes are ascending"),
          absl::StrCat(size));
    }
  }
  if (options.max_queue_size < 1)
    add("max_queue_size", ">= 1", absl::StrCat(options.max_queue_size));
  if (options.num_instances < 1) {
    add("num_instances", ">= 1", absl::StrCat(options.num_instances));
  } else if (options.num_instances > BatchQueueOptions::kMaxInstances) {
    add("num_instances", absl::StrCat("<= ", BatchQueueOptions::kMaxInstances),
        absl::StrCat(options.num_instances));
  }
  if (options.deadline_headroom < absl::ZeroDuration()) {
    add("deadline_headroom", ">= 0", absl::FormatDuration(options.deadline_headroom));
  } else if (options.deadline_headroom == absl::InfiniteDuration()) {
    add("deadline_headroom", "finite", absl::FormatDuration(options.deadline_headroom));
  }
  return problems;
}

absl::Status ValidateBatchQueueOptions(const BatchQueueOptions& options) {
  const std::vector<BatchQueueOptionProblem> problems = FindBatchQueueOptionProblems(options);
  if (problems.empty()) return absl::OkStatus();
  const BatchQueueOptionProblem& first = problems.front();
  return absl::InvalidArgumentError(absl::StrCat("BatchQueueOptions.", first.field, " of model '",
                                                 options.name, "' must be ", first.must_be,
                                                 ", got ", first.got));
}

BatchReservation::BatchReservation(BatchReservation&& other) noexcept
    : queue_(std::exchange(other.queue_, nullptr)) {}

BatchReservation& BatchReservation::operator=(BatchReservation&& other) noexcept {
  if (this != &other) {
    Release();
    queue_ = std::exchange(other.queue_, nullptr);
  }
  return *this;
}

BatchReservation::~BatchReservation() { Release(); }

void BatchReservation::Release() {
  if (queue_ != nullptr) std::exchange(queue_, nullptr)->Release();
}

namespace batching_internal {

absl::StatusOr<std::unique_ptr<BatchQueueCore>> BatchQueueCore::Create(
    const BatchQueueOptions& options, ProcessFn process, DropFn drop, Clock* clock) {
  if (absl::Status status = ValidateBatchQueueOptions(options); !status.ok()) return status;
  if (!process) {
    return absl::InvalidArgumentError(
        absl::StrCat("BatchQueue of model '", options.name, "': ProcessBatchFn must be set"));
  }
  if (!drop) {
    return absl::InvalidArgumentError(
        absl::StrCat("BatchQueue of model '", options.name, "': DropFn must be set"));
  }
  auto core = absl::WrapUnique(new BatchQueueCore(options, std::move(process), std::move(drop),
                                                  clock != nullptr ? clock : RealClock()));
  absl::MutexLock lock(&core->drain_mu_);
  for (int instance = 0; instance < options.num_instances; ++instance) {
    core->threads_.emplace_back([raw = core.get(), instance] { raw->Run(instance); });
  }
  return core;
}

BatchQueueCore::BatchQueueCore(const BatchQueueOptions& options, ProcessFn process, DropFn drop,
                               Clock* clock)
    : options_(options), process_(std::move(process)), drop_(std::move(drop)), clock_(clock) {}

BatchQueueCore::~BatchQueueCore() { Drain(absl::InfinitePast()).IgnoreError(); }

absl::Status BatchQueueCore::DrainingStatus() const {
  return absl::UnavailableError(absl::StrCat("queue of model ", options_.name, " is draining"));
}

absl::StatusOr<BatchReservation> BatchQueueCore::Reserve() {
  absl::MutexLock lock(&mu_);
  if (draining_) return DrainingStatus();
  const int waiting = reserved_ + static_cast<int>(queue_.size());
  if (waiting >= options_.max_queue_size) {
    return absl::ResourceExhaustedError(absl::StrCat("queue of model ", options_.name, " is full (",
                                                     waiting, " requests waiting)"));
  }
  ++reserved_;
  return BatchReservation(this);
}

void BatchQueueCore::Release() {
  absl::MutexLock lock(&mu_);
  --reserved_;
}

void BatchQueueCore::Schedule(BatchReservation reservation, std::unique_ptr<BatchTask> task) {
  if (reservation.queue_ != this) {
    // `reservation` (empty, or another queue's slot, given back when it goes out of scope) admits
    // nothing here.
    if (task != nullptr) {
      drop_(std::move(task), absl::FailedPreconditionError(absl::StrCat(
                                 "Schedule() on the queue of model ", options_.name,
                                 " needs a Reservation from that queue's Reserve(), got ",
                                 reservation.holds_slot() ? "another queue's" : "an empty one")));
    }
    return;
  }
  reservation.queue_ = nullptr;  // The slot passes from the handle to the task.
  const absl::Time deadline = task != nullptr ? task->deadline() : absl::InfiniteFuture();
  absl::Status drop_status;
  {
    absl::MutexLock lock(&mu_);
    --reserved_;
    if (task == nullptr) return;
    const absl::Time now = clock_->Now();
    if (stopped_) {
      // A drain ran out of time before this admitted task was prepared.
      drop_status = absl::UnavailableError(absl::StrCat("queue of model ", options_.name,
                                                        " shut down before the request could run"));
    } else if (deadline <= now) {
      drop_status = absl::DeadlineExceededError(absl::StrCat(
          "deadline passed before the request reached the queue of model ", options_.name));
    } else {
      queue_.push_back(Entry{std::move(task), now, deadline});
      return;
    }
  }
  drop_(std::move(task), std::move(drop_status));
}

int BatchQueueCore::NumQueued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

int BatchQueueCore::NumReserved() const {
  absl::MutexLock lock(&mu_);
  return reserved_ + static_cast<int>(queue_.size());
}

bool BatchQueueCore::CanLead() const {
  // While draining, a free thread also leads once nothing is queued or on its way: to exit.
  return stopped_ || (!forming_ && (!queue_.empty() || (draining_ && reserved_ == 0)));
}

int BatchQueueCore::LargestPreferredAtMost(int live) const {
  const std::vector<int>& sizes = options_.preferred_batch_sizes;
  auto it = std::upper_bound(sizes.begin(), sizes.end(), live);
  return it == sizes.begin() ? 0 : *std::prev(it);
}

void BatchQueueCore::Run(int instance) {
  tls_batch_thread_of = this;
  for (;;) {
    Formed formed;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &BatchQueueCore::CanLead));
      if (stopped_ || (draining_ && queue_.empty() && reserved_ == 0)) return;
      forming_ = true;
      formed = FormBatch();
      forming_ = false;
      if (formed.dropped.empty() && formed.batch.empty()) continue;
      ++in_progress_;
    }
    for (auto& [task, status] : formed.dropped) drop_(std::move(task), std::move(status));
    if (!formed.batch.empty()) process_(instance, std::move(formed.batch));
    absl::MutexLock lock(&mu_);
    --in_progress_;
  }
}

BatchQueueCore::Formed BatchQueueCore::FormBatch() {
  Formed formed;
  for (;;) {
    if (stopped_) return formed;
    const absl::Time now = clock_->Now();
    // Walk the head of the queue until max_batch_size live tasks are found, dropping dead ones.
    int live = 0;
    absl::Time wake = absl::InfiniteFuture();
    for (auto it = queue_.begin(); it != queue_.end() && live < options_.max_batch_size;) {
      if (it->deadline <= now) {
        formed.dropped.emplace_back(
            std::move(it->task),
            absl::DeadlineExceededError(absl::StrCat(
                "deadline passed while the request waited in the queue of model ", options_.name)));
        it = queue_.erase(it);
      } else if (it->task->IsCancelled()) {
        formed.dropped.emplace_back(
            std::move(it->task),
            absl::CancelledError(absl::StrCat(
                "request cancelled while it waited in the queue of model ", options_.name)));
        it = queue_.erase(it);
      } else {
        wake = std::min(wake, it->deadline - options_.deadline_headroom);
        ++live;
        ++it;
      }
    }
    if (live == 0) return formed;

    int size = 0;
    if (live == options_.max_batch_size || draining_) {
      size = live;
    } else if (const int preferred = LargestPreferredAtMost(live); preferred > 0) {
      size = preferred;
    } else if (options_.delay_only_while_tasks_are_reserved && reserved_ == 0) {
      size = live;  // nothing else is on its way: waiting could only add latency
    } else {
      wake = std::min(wake, queue_.front().scheduled + options_.max_queue_delay);
      if (now >= wake) size = live;
    }
    if (size > 0) {
      formed.batch.reserve(size);
      for (int i = 0; i < size; ++i) {
        formed.batch.push_back(std::move(queue_.front().task));
        queue_.pop_front();
      }
      return formed;
    }
    // Deliver what was dropped now rather than after the wait; formation resumes afterwards.
    if (!formed.dropped.empty()) return formed;

    // Wait for company: a new task, a drain, or the wake time, whichever comes first.
    // (A reservation ending also counts: with delay_only_while_tasks_are_reserved the wait may be
    // over when the last task on its way is given up.)
    const size_t seen = queue_.size();
    const int seen_reserved = reserved_;
    auto changed = [this, seen, seen_reserved]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return queue_.size() != seen || reserved_ != seen_reserved || draining_ || stopped_;
    };
    clock_->AwaitWithDeadline(&mu_, absl::Condition(&changed), wake);
  }
}

absl::Status BatchQueueCore::Drain(absl::Time deadline) {
  if (tls_batch_thread_of == this) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Drain() of the queue of model ", options_.name, " called from one of its batch threads"));
  }
  absl::MutexLock drain_lock(&drain_mu_);
  if (drained_) return drain_status_;
  bool in_time = false;
  int reserved_at_stop = 0;
  std::deque<Entry> leftovers;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    // Admitted work includes slots still being prepared: they are scheduled and run too.
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return queue_.empty() && in_progress_ == 0 && reserved_ == 0;
    };
    in_time = clock_->AwaitWithDeadline(&mu_, absl::Condition(&idle), deadline);
    stopped_ = true;
    reserved_at_stop = reserved_;
    leftovers.swap(queue_);
  }
  for (Entry& entry : leftovers) {
    drop_(std::move(entry.task),
          absl::UnavailableError(absl::StrCat("queue of model ", options_.name,
                                              " shut down before the request could run")));
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  drained_ = true;
  if (!in_time) {
    drain_status_ = absl::DeadlineExceededError(absl::StrCat(
        "queue of model ", options_.name, " did not drain before the deadline: ", leftovers.size(),
        " queued requests were dropped, ", reserved_at_stop, " still being prepared"));
  }
  return drain_status_;
}

}  // namespace batching_internal
}  // namespace iis
