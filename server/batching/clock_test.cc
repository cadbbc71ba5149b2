#include "server/batching/clock.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace iis {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

// A flag guarded by a mutex, waited for through a Clock.
struct Flag {
  absl::Mutex mu;
  bool set ABSL_GUARDED_BY(mu) = false;

  // Waits on `clock` until the flag is set or `deadline`; returns AwaitWithDeadline's result.
  bool WaitUntil(Clock* clock, absl::Time deadline) {
    absl::MutexLock lock(&mu);
    return clock->AwaitWithDeadline(&mu, absl::Condition(&set), deadline);
  }
  void Set() {
    absl::MutexLock lock(&mu);
    set = true;
  }
};

TEST(RealClockTest, IsASingletonThatTellsWallTime) {
  ASSERT_EQ(RealClock(), RealClock());
  const absl::Time before = absl::Now();
  const absl::Time now = RealClock()->Now();
  EXPECT_GE(now, before);
  EXPECT_LE(now, absl::Now());
}

TEST(RealClockTest, AwaitReturnsConditionOrTimesOut) {
  Flag flag;
  EXPECT_FALSE(flag.WaitUntil(RealClock(), absl::InfinitePast()));
  EXPECT_FALSE(flag.WaitUntil(RealClock(), absl::Now() + absl::Milliseconds(1)));
  flag.Set();
  EXPECT_TRUE(flag.WaitUntil(RealClock(), absl::InfiniteFuture()));
}

TEST(FakeClockTest, MovesOnlyForward) {
  FakeClock clock(kStart);
  EXPECT_EQ(clock.Now(), kStart);
  clock.Advance(absl::Seconds(3));
  EXPECT_EQ(clock.Now(), kStart + absl::Seconds(3));
  clock.Advance(-absl::Seconds(10));
  EXPECT_EQ(clock.Now(), kStart + absl::Seconds(3));
}

TEST(FakeClockTest, WaiterWakesExactlyWhenItsDeadlineIsReached) {
  FakeClock clock(kStart);
  Flag flag;
  std::atomic<int> result{-1};
  std::thread waiter([&] { result = flag.WaitUntil(&clock, kStart + absl::Milliseconds(10)); });
  ASSERT_TRUE(clock.BlockUntilWaiter(kStart + absl::Milliseconds(10)));
  clock.Advance(absl::Milliseconds(9));
  // Advance() returns after re-checking every reached waiter; this one was not reached.
  EXPECT_EQ(clock.NumWaiters(), 1);
  EXPECT_EQ(result, -1);
  clock.Advance(absl::Milliseconds(1));
  waiter.join();
  EXPECT_EQ(result, 0);
  EXPECT_EQ(clock.NumWaiters(), 0);
}

TEST(FakeClockTest, WaiterWakesWhenConditionTurnsTrue) {
  FakeClock clock(kStart);
  Flag flag;
  std::atomic<int> result{-1};
  std::thread waiter([&] { result = flag.WaitUntil(&clock, absl::InfiniteFuture()); });
  ASSERT_TRUE(clock.BlockUntilWaiter(absl::InfiniteFuture()));
  clock.Advance(absl::Hours(24 * 365));
  EXPECT_EQ(result, -1);
  flag.Set();
  waiter.join();
  EXPECT_EQ(result, 1);
  EXPECT_EQ(clock.Now(), kStart + absl::Hours(24 * 365));
}

TEST(FakeClockTest, DeadlineAlreadyReachedReturnsAtOnce) {
  FakeClock clock(kStart);
  Flag flag;
  EXPECT_FALSE(flag.WaitUntil(&clock, kStart));
  EXPECT_FALSE(flag.WaitUntil(&clock, absl::InfinitePast()));
  flag.Set();
  EXPECT_TRUE(flag.WaitUntil(&clock, kStart));
  EXPECT_EQ(clock.NumWaiters(), 0);
}

TEST(FakeClockTest, AdvanceWakesOnlyReachedWaitersSharingAMutex) {
  FakeClock clock(kStart);
  Flag flag;
  absl::Mutex woke_mu;
  int woke = 0;
  std::vector<std::thread> waiters;
  for (int i = 1; i <= 3; ++i) {
    waiters.emplace_back([&, i] {
      EXPECT_FALSE(flag.WaitUntil(&clock, kStart + absl::Seconds(i)));
      absl::MutexLock lock(&woke_mu);
      ++woke;
    });
    ASSERT_TRUE(clock.BlockUntilWaiter(kStart + absl::Seconds(i)));
  }
  clock.Advance(absl::Seconds(2));
  {
    absl::MutexLock lock(&woke_mu);
    ASSERT_TRUE(woke_mu.AwaitWithTimeout(absl::Condition(
                                             +[](int* n) { return *n >= 2; }, &woke),
                                         absl::Seconds(30)));
  }
  EXPECT_EQ(clock.NumWaiters(), 1);
  clock.Advance(absl::Seconds(1));
  for (std::thread& t : waiters) t.join();
  EXPECT_EQ(woke, 3);
}

TEST(FakeClockTest, BlockUntilWaiterTimesOutWhenNobodyWaits) {
  FakeClock clock(kStart);
  EXPECT_FALSE(clock.BlockUntilWaiter(kStart, absl::Milliseconds(1)));
}

// Many short waits racing with Advance(): no waiter may hang, and (under the sanitizers) no access
// to a finished waiter's state.
TEST(FakeClockTest, ConcurrentWaitsAndAdvancesTerminate) {
  FakeClock clock(kStart);
  constexpr int kThreads = 4;
  constexpr int kWaitsPerThread = 300;
  std::atomic<int> finished{0};
  std::vector<std::thread> waiters;
  for (int t = 0; t < kThreads; ++t) {
    waiters.emplace_back([&] {
      for (int i = 0; i < kWaitsPerThread; ++i) {
        Flag flag;  // a fresh mutex each time: it must be safe to destroy right after the wait
        EXPECT_FALSE(flag.WaitUntil(&clock, clock.Now() + absl::Nanoseconds(1 + i % 3)));
      }
      ++finished;
    });
  }
  while (finished < kThreads) clock.Advance(absl::Nanoseconds(1));
  for (std::thread& t : waiters) t.join();
  EXPECT_EQ(clock.NumWaiters(), 0);
}

}  // namespace
}  // namespace iis
