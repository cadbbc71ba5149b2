#include "server/batching/batch_queue.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/batching/clock.h"

namespace iis {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);
// Guard against hangs in waits that must succeed; never reached when the code is right.
const absl::Duration kTestTimeout = absl::Seconds(60);

class TestTask : public BatchTask {
 public:
  TestTask(int id, absl::Time deadline, std::shared_ptr<std::atomic<bool>> cancelled)
      : id_(id), deadline_(deadline), cancelled_(std::move(cancelled)) {}
  absl::Time deadline() const override { return deadline_; }
  bool IsCancelled() const override { return cancelled_ != nullptr && cancelled_->load(); }
  int id() const { return id_; }

 private:
  const int id_;
  const absl::Time deadline_;
  const std::shared_ptr<std::atomic<bool>> cancelled_;
};

struct Drop {
  int id;
  absl::StatusCode code;
  std::string message;
};

// A queue on a FakeClock that records what reaches its callbacks. While the gate is closed,
// ProcessBatchFn blocks (after recording the batch), which keeps an instance busy on demand.
class Harness {
 public:
  explicit Harness(BatchQueueOptions options) : clock_(kStart) {
    options.name = "m";
    auto queue = BatchQueue<TestTask>::Create(
        options,
        [this](int instance, std::vector<std::unique_ptr<TestTask>> batch) {
          OnBatch(instance, std::move(batch));
        },
        [this](std::unique_ptr<TestTask> task, absl::Status status) {
          absl::MutexLock lock(&mu_);
          drops_.push_back(Drop{task->id(), status.code(), std::string(status.message())});
        },
        &clock_);
    EXPECT_TRUE(queue.ok()) << queue.status();
    queue_ = *std::move(queue);
  }
  ~Harness() {
    OpenGate();
    queue_.reset();
  }

  // Destroys the queue (which drains it at once) and keeps the records.
  void DestroyQueue() { queue_.reset(); }

  BatchQueue<TestTask>& queue() { return *queue_; }
  FakeClock& clock() { return clock_; }

  // Reserves a slot and schedules task `id` into it.
  void Add(int id, absl::Time deadline = absl::InfiniteFuture(),
           std::shared_ptr<std::atomic<bool>> cancelled = nullptr) {
    absl::StatusOr<BatchReservation> slot = queue_->Reserve();
    ASSERT_TRUE(slot.ok()) << slot.status();
    queue_->Schedule(*std::move(slot), std::make_unique<TestTask>(id, deadline, cancelled));
  }

  void CloseGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = false;
  }
  void OpenGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = true;
  }

  // Wait (real time, bounded) until at least `n` batches were recorded / `n` batches are blocked at
  // the gate / `n` drops were recorded. Return false on timeout.
  bool WaitForBatches(int n) {
    return WaitFor([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return batches_.size() >= static_cast<size_t>(n);
    });
  }
  bool WaitForBlocked(int n) {
    return WaitFor([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return blocked_ >= n; });
  }
  bool WaitForDrops(int n) {
    return WaitFor([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return drops_.size() >= static_cast<size_t>(n);
    });
  }

  // Returns the ids of each batch, in the order the batches started.
  std::vector<std::vector<int>> Batches() {
    absl::MutexLock lock(&mu_);
    std::vector<std::vector<int>> ids;
    for (const auto& [instance, batch] : batches_) ids.push_back(batch);
    return ids;
  }
  std::vector<int> Instances() {
    absl::MutexLock lock(&mu_);
    std::vector<int> instances;
    for (const auto& [instance, batch] : batches_) instances.push_back(instance);
    return instances;
  }
  std::vector<Drop> Drops() {
    absl::MutexLock lock(&mu_);
    return drops_;
  }
  // Returns every id that reached a callback, in delivery order per kind (batches then drops).
  std::vector<int> AllDelivered() {
    absl::MutexLock lock(&mu_);
    std::vector<int> ids;
    for (const auto& [instance, batch] : batches_)
      ids.insert(ids.end(), batch.begin(), batch.end());
    for (const Drop& drop : drops_) ids.push_back(drop.id);
    return ids;
  }

 private:
  void OnBatch(int instance, std::vector<std::unique_ptr<TestTask>> batch) {
    std::vector<int> ids;
    for (const auto& task : batch) ids.push_back(task->id());
    absl::MutexLock lock(&mu_);
    batches_.emplace_back(instance, std::move(ids));
    ++blocked_;
    mu_.Await(absl::Condition(&gate_open_));
    --blocked_;
  }

  template <typename Pred>
  bool WaitFor(Pred pred) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&pred), kTestTimeout);
  }

  FakeClock clock_;
  absl::Mutex mu_;
  bool gate_open_ ABSL_GUARDED_BY(mu_) = true;
  int blocked_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::pair<int, std::vector<int>>> batches_ ABSL_GUARDED_BY(mu_);
  std::vector<Drop> drops_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<BatchQueue<TestTask>> queue_;  // last: destroyed (drained) first
};

BatchQueueOptions Options(int max_batch_size, absl::Duration max_queue_delay) {
  BatchQueueOptions options;
  options.max_batch_size = max_batch_size;
  options.max_queue_delay = max_queue_delay;
  return options;
}

TEST(BatchQueueTest, FullBatchIsDispatchedAtOnce) {
  Harness h(Options(4, absl::Hours(1)));
  for (int id = 0; id < 4; ++id) h.Add(id);
  ASSERT_TRUE(h.WaitForBatches(1));
  // Three more wait for company until the oldest has waited an hour.
  for (int id = 4; id < 7; ++id) h.Add(id);
  ASSERT_TRUE(h.clock().BlockUntilWaiter(kStart + absl::Hours(1)));
  EXPECT_EQ(h.Batches().size(), 1u);
  EXPECT_EQ(h.queue().NumQueued(), 3);
  h.clock().Advance(absl::Hours(1));
  ASSERT_TRUE(h.WaitForBatches(2));
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0, 1, 2, 3), ElementsAre(4, 5, 6)));
  EXPECT_THAT(h.Drops(), IsEmpty());
}

TEST(BatchQueueTest, LargestFillablePreferredSizeIsDispatchedAtOnce) {
  BatchQueueOptions options = Options(8, absl::Hours(1));
  options.preferred_batch_sizes = {2, 4};
  Harness h(options);
  h.CloseGate();
  h.Add(0);
  h.Add(1);  // fills preferred size 2
  ASSERT_TRUE(h.WaitForBlocked(1));
  for (int id = 2; id < 7; ++id) h.Add(id);  // five queued while the only instance is busy
  h.OpenGate();
  ASSERT_TRUE(h.WaitForBatches(2));
  // The one left over (below every preferred size) waits for max_queue_delay.
  ASSERT_TRUE(h.clock().BlockUntilWaiter(kStart + absl::Hours(1)));
  EXPECT_EQ(h.Batches().size(), 2u);
  h.clock().Advance(absl::Hours(1));
  ASSERT_TRUE(h.WaitForBatches(3));
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0, 1), ElementsAre(2, 3, 4, 5), ElementsAre(6)));
}

TEST(BatchQueueTest, PartialBatchLeavesWhenTheOldestTaskHasWaitedMaxQueueDelay) {
  Harness h(Options(8, absl::Milliseconds(10)));
  h.Add(0);
  ASSERT_TRUE(h.clock().BlockUntilWaiter(kStart + absl::Milliseconds(10)));
  h.clock().Advance(absl::Milliseconds(6));
  h.Add(1);
  h.Add(2);
  // Still measured from the oldest task's arrival, not the newest.
  ASSERT_TRUE(h.clock().BlockUntilWaiter(kStart + absl::Milliseconds(10)));
  h.clock().Advance(absl::Milliseconds(3));
  EXPECT_THAT(h.Batches(), IsEmpty());
  h.clock().Advance(absl::Milliseconds(1));
  ASSERT_TRUE(h.WaitForBatches(1));
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0, 1, 2)));
}

TEST(BatchQueueTest, ZeroDelayDispatchesWhateverIsQueued) {
  Harness h(Options(8, absl::ZeroDuration()));
  h.CloseGate();
  h.Add(0);
  ASSERT_TRUE(h.WaitForBlocked(1));  // no clock movement needed
  for (int id = 1; id < 4; ++id) h.Add(id);
  h.OpenGate();
  ASSERT_TRUE(h.WaitForBatches(2));
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0), ElementsAre(1, 2, 3)));
  EXPECT_EQ(h.clock().Now(), kStart);
}

TEST(BatchQueueTest, DelayOnlyWhileReservedDispatchesALoneTaskAtOnce) {
  BatchQueueOptions options = Options(8, absl::Hours(1));
  options.delay_only_while_tasks_are_reserved = true;
  Harness h(options);
  h.Add(0);  // nothing else on its way: leaves without any clock movement
  ASSERT_TRUE(h.WaitForBatches(1));
  // A request admitted and still being prepared: task 1 waits for it ...
  absl::StatusOr<BatchReservation> coming = h.queue().Reserve();
  ASSERT_TRUE(coming.ok());
  h.Add(1);
  ASSERT_TRUE(h.clock().BlockUntilWaiter(kStart + absl::Hours(1)));
  EXPECT_EQ(h.Batches().size(), 1u);
  // ... and both leave together as soon as it arrives.
  h.queue().Schedule(*std::move(coming),
                     std::make_unique<TestTask>(2, absl::InfiniteFuture(), nullptr));
  ASSERT_TRUE(h.WaitForBatches(2));
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0), ElementsAre(1, 2)));
  // A reservation given back unused ends the wait too.
  absl::StatusOr<BatchReservation> abandoned = h.queue().Reserve();
  ASSERT_TRUE(abandoned.ok());
  h.Add(3);
  ASSERT_TRUE(h.clock().BlockUntilWaiter(kStart + absl::Hours(1)));
  { BatchReservation gone = *std::move(abandoned); }
  ASSERT_TRUE(h.WaitForBatches(3));
  EXPECT_THAT(h.Batches().back(), ElementsAre(3));
  EXPECT_EQ(h.clock().Now(), kStart);
}

TEST(BatchQueueTest, TasksKeepArrivalOrderAcrossBatches) {
  Harness h(Options(3, absl::ZeroDuration()));
  h.CloseGate();
  h.Add(0);
  ASSERT_TRUE(h.WaitForBlocked(1));
  for (int id = 1; id <= 10; ++id) h.Add(id);
  h.OpenGate();
  ASSERT_TRUE(h.WaitForBatches(5));
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0), ElementsAre(1, 2, 3), ElementsAre(4, 5, 6),
                                       ElementsAre(7, 8, 9), ElementsAre(10)));
}

TEST(BatchQueueTest, InstancesRunBatchesConcurrently) {
  BatchQueueOptions options = Options(2, absl::Hours(1));
  options.num_instances = 3;
  Harness h(options);
  h.CloseGate();
  h.Add(0);
  h.Add(1);
  ASSERT_TRUE(h.WaitForBlocked(1));
  // One instance is busy; the next full batch still goes out, to another instance.
  h.Add(2);
  h.Add(3);
  ASSERT_TRUE(h.WaitForBlocked(2));
  h.Add(4);
  h.Add(5);
  ASSERT_TRUE(h.WaitForBlocked(3));  // all three inside ProcessBatchFn at once
  std::vector<int> instances = h.Instances();
  EXPECT_THAT(instances, UnorderedElementsAre(0, 1, 2));
  h.OpenGate();
  // A freed instance takes new work again.
  h.Add(6);
  h.Add(7);
  ASSERT_TRUE(h.WaitForBatches(4));
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0, 1), ElementsAre(2, 3), ElementsAre(4, 5),
                                       ElementsAre(6, 7)));
}

TEST(BatchQueueTest, FullQueueRefusesAtOnceAndRecoversWhenABatchLeaves) {
  BatchQueueOptions options = Options(3, absl::Hours(1));
  options.max_queue_size = 3;
  Harness h(options);
  h.CloseGate();
  std::vector<BatchReservation> slots;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<BatchReservation> slot = h.queue().Reserve();
    ASSERT_TRUE(slot.ok()) << slot.status();
    slots.push_back(*std::move(slot));
  }
  EXPECT_EQ(h.queue().NumReserved(), 3);
  EXPECT_EQ(h.queue().NumQueued(), 0);
  absl::StatusOr<BatchReservation> refused = h.queue().Reserve();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.status().message(), "queue of model m is full (3 requests waiting)");

  h.queue().Schedule(std::move(slots[0]),
                     std::make_unique<TestTask>(0, absl::InfiniteFuture(), nullptr));
  EXPECT_EQ(h.queue().NumQueued(), 1);
  EXPECT_EQ(h.queue().NumReserved(), 3);
  EXPECT_FALSE(h.queue().Reserve().ok());
  for (int id = 1; id < 3; ++id) {
    h.queue().Schedule(std::move(slots[id]),
                       std::make_unique<TestTask>(id, absl::InfiniteFuture(), nullptr));
  }
  ASSERT_TRUE(h.WaitForBlocked(1));  // the batch is running: its tasks no longer count
  EXPECT_EQ(h.queue().NumReserved(), 0);
  EXPECT_TRUE(h.queue().Reserve().ok());
}

TEST(BatchQueueTest, UnusedReservationGivesItsSlotBack) {
  BatchQueueOptions options = Options(1, absl::ZeroDuration());
  options.max_queue_size = 2;
  Harness h(options);
  {
    absl::StatusOr<BatchReservation> a = h.queue().Reserve();
    ASSERT_TRUE(a.ok());
    EXPECT_TRUE(a->holds_slot());
    EXPECT_EQ(h.queue().NumReserved(), 1);
    BatchReservation moved = *std::move(a);
    EXPECT_FALSE(a->holds_slot());
    EXPECT_EQ(h.queue().NumReserved(), 1);  // moving does not release
    absl::StatusOr<BatchReservation> b = h.queue().Reserve();
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(h.queue().NumReserved(), 2);
    moved = *std::move(b);  // gives the first slot back, keeps the second
    EXPECT_EQ(h.queue().NumReserved(), 1);
  }
  EXPECT_EQ(h.queue().NumReserved(), 0);
  // A null task just gives its slot back.
  absl::StatusOr<BatchReservation> c = h.queue().Reserve();
  ASSERT_TRUE(c.ok());
  h.queue().Schedule(*std::move(c), nullptr);
  EXPECT_EQ(h.queue().NumReserved(), 0);
  EXPECT_THAT(h.AllDelivered(), IsEmpty());
}

TEST(BatchQueueTest, ScheduleWithoutAReservationOfThisQueueDropsTheTask) {
  Harness h(Options(1, absl::ZeroDuration()));
  Harness other(Options(1, absl::ZeroDuration()));
  h.queue().Schedule(BatchReservation(),
                     std::make_unique<TestTask>(0, absl::InfiniteFuture(), nullptr));
  absl::StatusOr<BatchReservation> foreign = other.queue().Reserve();
  ASSERT_TRUE(foreign.ok());
  h.queue().Schedule(*std::move(foreign),
                     std::make_unique<TestTask>(1, absl::InfiniteFuture(), nullptr));
  EXPECT_EQ(other.queue().NumReserved(), 0);  // the foreign slot went back to its queue
  std::vector<Drop> drops = h.Drops();
  ASSERT_EQ(drops.size(), 2u);
  EXPECT_EQ(drops[0].code, absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(drops[0].message, HasSubstr("an empty one"));
  EXPECT_EQ(drops[1].code, absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(drops[1].message, HasSubstr("another queue's"));
  EXPECT_THAT(h.Batches(), IsEmpty());
}

TEST(BatchQueueTest, TaskAlreadyExpiredAtScheduleIsDroppedThere) {
  Harness h(Options(4, absl::ZeroDuration()));
  h.Add(0, kStart);  // deadline == now: expired
  // Reported synchronously, on this thread.
  std::vector<Drop> drops = h.Drops();
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].id, 0);
  EXPECT_EQ(drops[0].code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(h.queue().NumReserved(), 0);
}

TEST(BatchQueueTest, TaskExpiredWhileQueuedIsNeverProcessed) {
  Harness h(Options(4, absl::ZeroDuration()));
  h.CloseGate();
  h.Add(0);
  ASSERT_TRUE(h.WaitForBlocked(1));
  h.Add(1, kStart + absl::Milliseconds(5));
  h.Add(2);
  h.Add(3, kStart + absl::Milliseconds(50));
  h.clock().Advance(absl::Milliseconds(10));
  h.OpenGate();
  ASSERT_TRUE(h.WaitForBatches(2));
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0), ElementsAre(2, 3)));
  std::vector<Drop> drops = h.Drops();
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].id, 1);
  EXPECT_EQ(drops[0].code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(drops[0].message, HasSubstr("queue of model m"));
}

TEST(BatchQueueTest, TaskWithAnEarlyDeadlineLeavesBeforeItExpires) {
  BatchQueueOptions options = Options(8, absl::Milliseconds(100));
  options.deadline_headroom = absl::Milliseconds(1);
  Harness h(options);
  h.Add(0);
  h.Add(1, kStart + absl::Milliseconds(30));
  // The batch waits for company only until 1 ms before task 1's deadline, not for 100 ms.
  ASSERT_TRUE(h.clock().BlockUntilWaiter(kStart + absl::Milliseconds(29)));
  h.clock().Advance(absl::Milliseconds(28));
  EXPECT_THAT(h.Batches(), IsEmpty());
  h.clock().Advance(absl::Milliseconds(1));
  ASSERT_TRUE(h.WaitForBatches(1));
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0, 1)));
  EXPECT_THAT(h.Drops(), IsEmpty());
}

TEST(BatchQueueTest, CancelledTaskIsDroppedAtFormation) {
  Harness h(Options(4, absl::ZeroDuration()));
  h.CloseGate();
  h.Add(0);
  ASSERT_TRUE(h.WaitForBlocked(1));
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  h.Add(1, absl::InfiniteFuture(), cancelled);
  h.Add(2);
  cancelled->store(true);  // after scheduling, before its batch forms
  h.OpenGate();
  ASSERT_TRUE(h.WaitForBatches(2));
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0), ElementsAre(2)));
  std::vector<Drop> drops = h.Drops();
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].id, 1);
  EXPECT_EQ(drops[0].code, absl::StatusCode::kCancelled);
}

// Regression test: a request admitted before the drain but still being prepared when it started
// used to be dropped with UNAVAILABLE while the drain reported success.
TEST(BatchQueueTest, DrainRunsQueuedRunningAndAdmittedTasksAndRefusesNewOnes) {
  BatchQueueOptions options = Options(2, absl::Seconds(10));
  Harness h(options);
  h.CloseGate();
  h.Add(0);
  h.Add(1);
  ASSERT_TRUE(h.WaitForBlocked(1));
  for (int id = 2; id < 5; ++id) h.Add(id);
  absl::StatusOr<BatchReservation> pending = h.queue().Reserve();  // preprocessing, say
  ASSERT_TRUE(pending.ok());

  const absl::Time drain_deadline = kStart + absl::Hours(1);
  absl::Status drained;
  std::thread drainer([&] { drained = h.queue().Drain(drain_deadline); });
  ASSERT_TRUE(h.clock().BlockUntilWaiter(drain_deadline));
  EXPECT_EQ(h.queue().Reserve().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(h.queue().Reserve().status().message(), "queue of model m is draining");
  h.queue().Schedule(*std::move(pending),
                     std::make_unique<TestTask>(5, absl::InfiniteFuture(), nullptr));
  EXPECT_TRUE(h.Drops().empty());

  h.OpenGate();  // queued tasks go without waiting 10 s for company
  drainer.join();
  EXPECT_TRUE(drained.ok()) << drained;
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0, 1), ElementsAre(2, 3), ElementsAre(4, 5)));
  std::vector<int> delivered = h.AllDelivered();
  std::sort(delivered.begin(), delivered.end());
  EXPECT_THAT(delivered, ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_EQ(h.clock().Now(), kStart);
  // Later calls answer with the first result.
  EXPECT_TRUE(h.queue().Drain(absl::InfinitePast()).ok());
}

TEST(BatchQueueTest, DrainDeadlineDropsQueuedTasksAndWaitsForRunningOnes) {
  Harness h(Options(2, absl::Hours(1)));
  h.CloseGate();
  h.Add(0);
  h.Add(1);
  ASSERT_TRUE(h.WaitForBlocked(1));
  for (int id = 2; id < 5; ++id) h.Add(id);

  const absl::Time drain_deadline = kStart + absl::Seconds(5);
  absl::Status drained;
  std::thread drainer([&] { drained = h.queue().Drain(drain_deadline); });
  ASSERT_TRUE(h.clock().BlockUntilWaiter(drain_deadline));
  h.clock().Advance(absl::Seconds(5));
  ASSERT_TRUE(h.WaitForDrops(3));  // while the running batch still runs
  h.OpenGate();
  drainer.join();
  EXPECT_EQ(drained.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(drained.message(), HasSubstr("3 queued requests were dropped"));
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0, 1)));
  std::vector<Drop> drops = h.Drops();
  ASSERT_EQ(drops.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(drops[i].id, i + 2);
    EXPECT_EQ(drops[i].code, absl::StatusCode::kUnavailable);
  }
  EXPECT_EQ(h.queue().Drain(absl::InfiniteFuture()).code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(BatchQueueTest, DrainWaitsForAdmittedSlotsUntilItsDeadlineThenRefusesThem) {
  Harness h(Options(2, absl::Hours(1)));
  absl::StatusOr<BatchReservation> pending = h.queue().Reserve();  // never prepared in time
  ASSERT_TRUE(pending.ok());
  const absl::Time drain_deadline = kStart + absl::Seconds(5);
  absl::Status drained;
  std::thread drainer([&] { drained = h.queue().Drain(drain_deadline); });
  ASSERT_TRUE(h.clock().BlockUntilWaiter(drain_deadline));
  h.clock().Advance(absl::Seconds(5));
  drainer.join();
  EXPECT_EQ(drained.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(drained.message(),
              HasSubstr("0 queued requests were dropped, 1 still being prepared"));
  h.queue().Schedule(*std::move(pending),
                     std::make_unique<TestTask>(7, absl::InfiniteFuture(), nullptr));
  std::vector<Drop> drops = h.Drops();
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].id, 7);
  EXPECT_EQ(drops[0].code, absl::StatusCode::kUnavailable);
  EXPECT_THAT(drops[0].message, HasSubstr("shut down before the request could run"));
  EXPECT_TRUE(h.Batches().empty());
}

TEST(BatchQueueTest, DestructorDropsQueuedTasksAndWaitsForRunningBatch) {
  Harness h(Options(1, absl::ZeroDuration()));
  h.CloseGate();
  h.Add(0);
  ASSERT_TRUE(h.WaitForBlocked(1));
  h.Add(1);
  h.Add(2);
  // The destructor blocks until the running batch returns, so run it on another thread.
  std::thread destroyer([&] { h.DestroyQueue(); });
  ASSERT_TRUE(h.WaitForDrops(2));
  h.OpenGate();
  destroyer.join();
  std::vector<Drop> drops = h.Drops();
  ASSERT_EQ(drops.size(), 2u);
  EXPECT_EQ(drops[0].code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(drops[1].code, absl::StatusCode::kUnavailable);
  EXPECT_THAT(h.Batches(), ElementsAre(ElementsAre(0)));
}

TEST(BatchQueueTest, DrainFromABatchThreadIsRefused) {
  absl::Mutex mu;
  absl::Status from_callback;
  bool called = false;
  std::unique_ptr<BatchQueue<TestTask>> queue;
  auto created = BatchQueue<TestTask>::Create(
      BatchQueueOptions(),
      [&](int, std::vector<std::unique_ptr<TestTask>>) {
        absl::Status status = queue->Drain(absl::InfinitePast());
        absl::MutexLock lock(&mu);
        from_callback = status;
        called = true;
      },
      [](std::unique_ptr<TestTask>, absl::Status) {});
  ASSERT_TRUE(created.ok()) << created.status();
  queue = *std::move(created);
  absl::StatusOr<BatchReservation> slot = queue->Reserve();
  ASSERT_TRUE(slot.ok());
  queue->Schedule(*std::move(slot), std::make_unique<TestTask>(0, absl::InfiniteFuture(), nullptr));
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&called), kTestTimeout));
    EXPECT_EQ(from_callback.code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_TRUE(queue->Drain(absl::InfiniteFuture()).ok());
}

TEST(BatchQueueOptionsTest, ValidationNamesTheBadField) {
  struct Case {
    void (*mutate)(BatchQueueOptions&);
    const char* field;
    const char* got;
  };
  const Case cases[] = {
      {[](BatchQueueOptions& o) { o.max_batch_size = 0; }, "max_batch_size", "got 0"},
      {[](BatchQueueOptions& o) { o.max_queue_delay = -absl::Milliseconds(1); }, "max_queue_delay",
       "got -1ms"},
      {[](BatchQueueOptions& o) { o.max_queue_delay = absl::InfiniteDuration(); },
       "max_queue_delay", "got inf"},
      {[](BatchQueueOptions& o) {
         o.preferred_batch_sizes = {2, 9};
       },
       "preferred_batch_sizes[1]", "got 9"},
      {[](BatchQueueOptions& o) { o.preferred_batch_sizes = {0}; }, "preferred_batch_sizes[0]",
       "got 0"},
      {[](BatchQueueOptions& o) {
         o.preferred_batch_sizes = {4, 4};
       },
       "preferred_batch_sizes[1]", "got 4"},
      {[](BatchQueueOptions& o) {
         o.preferred_batch_sizes = {4, 2};
       },
       "preferred_batch_sizes[1]", "got 2"},
      {[](BatchQueueOptions& o) { o.max_queue_size = 0; }, "max_queue_size", "got 0"},
      {[](BatchQueueOptions& o) { o.num_instances = 0; }, "num_instances", "got 0"},
      {[](BatchQueueOptions& o) { o.num_instances = 100000; }, "num_instances", "got 100000"},
      {[](BatchQueueOptions& o) { o.deadline_headroom = -absl::Seconds(1); }, "deadline_headroom",
       "got -1s"},
  };
  for (const Case& c : cases) {
    BatchQueueOptions options;
    options.name = "resnet";
    options.max_batch_size = 8;
    c.mutate(options);
    absl::Status status = ValidateBatchQueueOptions(options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("BatchQueueOptions.", c.field)));
    EXPECT_THAT(status.message(), HasSubstr("'resnet'"));
    EXPECT_THAT(status.message(), HasSubstr(c.got)) << status;
    auto queue = BatchQueue<TestTask>::Create(
        options, [](int, std::vector<std::unique_ptr<TestTask>>) {},
        [](std::unique_ptr<TestTask>, absl::Status) {});
    EXPECT_EQ(queue.status(), status);
  }
  BatchQueueOptions good;
  good.max_batch_size = 8;
  good.preferred_batch_sizes = {1, 4, 8};
  EXPECT_TRUE(ValidateBatchQueueOptions(good).ok());
}

TEST(BatchQueueOptionsTest, CallbacksAreRequired) {
  auto no_process = BatchQueue<TestTask>::Create(BatchQueueOptions(), nullptr,
                                                 [](std::unique_ptr<TestTask>, absl::Status) {});
  EXPECT_EQ(no_process.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_process.status().message(), HasSubstr("ProcessBatchFn"));
  auto no_drop = BatchQueue<TestTask>::Create(
      BatchQueueOptions(), [](int, std::vector<std::unique_ptr<TestTask>>) {}, nullptr);
  EXPECT_EQ(no_drop.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_drop.status().message(), HasSubstr("DropFn"));
}

// Many producers on the real clock with random deadlines and cancellations, a drain in the middle
// of production: every scheduled task reaches exactly one callback, exactly once; no refused task
// reaches any; batches respect max_batch_size; an instance runs one batch at a time.
TEST(BatchQueueStressTest, EveryScheduledTaskReachesExactlyOneCallback) {
  constexpr int kProducers = 4;
  constexpr int kTasksPerProducer = 2000;
  constexpr int kTotal = kProducers * kTasksPerProducer;
  BatchQueueOptions options;
  options.name = "stress";
  options.max_batch_size = 8;
  options.preferred_batch_sizes = {4};
  options.max_queue_delay = absl::Microseconds(200);
  options.deadline_headroom = absl::Microseconds(50);
  options.max_queue_size = 24;
  options.num_instances = 3;

  std::vector<std::atomic<int>> hits(kTotal);
  std::vector<std::atomic<bool>> scheduled(kTotal);
  std::vector<std::atomic<bool>> cancelled_before(kTotal);
  std::vector<std::atomic<int>> busy(options.num_instances);
  std::atomic<int> num_scheduled{0};
  std::atomic<int> num_processed{0};
  std::atomic<int> num_dropped{0};
  std::atomic<int> num_attempted{0};

  auto queue_or = BatchQueue<TestTask>::Create(
      options,
      [&](int instance, std::vector<std::unique_ptr<TestTask>> batch) {
        EXPECT_EQ(busy[instance].exchange(1), 0) << "instance " << instance << " ran two batches";
        EXPECT_GE(batch.size(), 1u);
        EXPECT_LE(batch.size(), 8u);
        for (const auto& task : batch) {
          EXPECT_FALSE(cancelled_before[task->id()].load()) << task->id();
          ++hits[task->id()];
        }
        num_processed += static_cast<int>(batch.size());
        // A little work, so that the queue fills up and batches form under pressure.
        const absl::Time until = absl::Now() + absl::Microseconds(20);
        while (absl::Now() < until) {
        }
        busy[instance] = 0;
      },
      [&](std::unique_ptr<TestTask> task, absl::Status status) {
        EXPECT_THAT(status.code(),
                    ::testing::AnyOf(absl::StatusCode::kDeadlineExceeded,
                                     absl::StatusCode::kCancelled, absl::StatusCode::kUnavailable));
        ++hits[task->id()];
        ++num_dropped;
      },
      RealClock());
  ASSERT_TRUE(queue_or.ok()) << queue_or.status();
  std::unique_ptr<BatchQueue<TestTask>> queue = *std::move(queue_or);

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 rng(1234 + p);
      std::uniform_int_distribution<int> percent(0, 99);
      for (int i = 0; i < kTasksPerProducer; ++i) {
        const int id = p * kTasksPerProducer + i;
        ++num_attempted;
        absl::StatusOr<BatchReservation> slot = queue->Reserve();
        if (slot.status().code() == absl::StatusCode::kUnavailable) break;  // draining
        if (!slot.ok()) {
          EXPECT_EQ(slot.status().code(), absl::StatusCode::kResourceExhausted);
          std::this_thread::yield();
          continue;
        }
        const int roll = percent(rng);
        absl::Time deadline = absl::InfiniteFuture();
        if (roll < 10) {
          deadline = absl::Now() - absl::Milliseconds(1);
        } else if (roll < 40) {
          deadline = absl::Now() + absl::Microseconds(percent(rng) * 20);
        }
        auto cancelled = std::make_shared<std::atomic<bool>>(false);
        const int cancel_roll = percent(rng);
        if (cancel_roll < 10) {
          cancelled->store(true);
          cancelled_before[id] = true;
        }
        scheduled[id] = true;
        ++num_scheduled;
        queue->Schedule(*std::move(slot), std::make_unique<TestTask>(id, deadline, cancelled));
        if (cancel_roll >= 10 && cancel_roll < 20) cancelled->store(true);  // races formation
      }
      num_attempted += kTasksPerProducer;  // ends the wait below even when this one stopped early
    });
  }
  // Drain when about three quarters of the tasks were tried, while producers keep going.
  while (num_attempted.load() < kTotal * 3 / 4) std::this_thread::yield();
  absl::Status drained = queue->Drain(absl::Now() + absl::Seconds(30));
  for (std::thread& t : producers) t.join();
  EXPECT_TRUE(drained.ok()) << drained;

  int expected = 0;
  for (int id = 0; id < kTotal; ++id) {
    if (scheduled[id]) {
      ++expected;
      EXPECT_EQ(hits[id].load(), 1) << "task " << id;
    } else {
      EXPECT_EQ(hits[id].load(), 0) << "task " << id;
    }
  }
  EXPECT_EQ(num_processed + num_dropped, expected);
  EXPECT_GT(num_processed.load(), 0);
  EXPECT_GT(num_dropped.load(), 0);
  EXPECT_EQ(queue->NumReserved(), 0);
}

}  // namespace
}  // namespace iis
