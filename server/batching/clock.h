// Time source of the batching library, injectable so that batching can be tested deterministically.
//
// Code that needs "now" or must wait until a point in time takes a `Clock*`. Production passes
// RealClock(); tests pass a FakeClock and move time forward by hand, so nothing depends on real
// sleeps (the idea of TensorFlow Serving's FakeClockEnv, written for absl::Mutex conditions).
#pragma once

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace iis {

// A source of the current time that can also put a thread to sleep until a deadline on that time.
// Implementations are thread-safe: every method may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;

  // Returns the current time on this clock.
  virtual absl::Time Now() const = 0;

  // Unlocks `mu` and blocks until `cond` is true or this clock reaches `deadline` (Now() >=
  // deadline), then reacquires `mu`. Returns true iff `cond` is true on return, as
  // absl::Mutex::AwaitWithDeadline does. `mu` must be held (exclusively) by the caller; `cond` must
  // follow absl::Condition's rules (a pure function of state guarded by `mu`). A deadline already
  // reached returns at once; absl::InfiniteFuture() waits for `cond` alone.
  virtual bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
};

// Returns the process-wide wall clock (absl::Now(), absl::Mutex timed waits). Never null, never
// destroyed; thread-safe.
Clock* RealClock();

// A clock that only moves when Advance() is called, for deterministic tests. Waiters whose deadline
// is reached by Advance() wake up; a waiter also wakes as soon as its condition becomes true, as
// with the real clock. Thread-safe. Must outlive every wait on it.
class FakeClock : public Clock {
 public:
  // Starts the clock at `start`.
  explicit FakeClock(absl::Time start = absl::UnixEpoch());
  FakeClock(const FakeClock&) = delete;
  FakeClock& operator=(const FakeClock&) = delete;
  ~FakeClock() override;

  absl::Time Now() const override;
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) override;

  // Moves the clock forward by `d` (a negative `d` is treated as zero: time never goes back) and
  // wakes every waiter whose deadline is now reached. When it returns, each such waiter's wait is
  // over or its mutex has been handed back to it. Must not be called while holding a mutex that a
  // waiter of this clock waits on.
  void Advance(absl::Duration d);

  // Blocks until some thread waits on this clock with exactly `deadline`, or until `real_timeout`
  // of wall time passes (a guard so that a broken test fails instead of hanging). Returns true when
  // such a waiter was seen. Lets a test know that a thread has decided to sleep before it moves
  // time.
  bool BlockUntilWaiter(absl::Time deadline, absl::Duration real_timeout = absl::Seconds(30));

  // Returns how many threads are waiting on this clock right now.
  int NumWaiters() const;

 private:
  // One thread inside AwaitWithDeadline(); lives on that thread's stack.
  struct Waiter {
    absl::Mutex* mu = nullptr;
    absl::Time deadline;
    // Set under *mu once the clock reached `deadline`; part of the waiter's absl::Condition.
    bool reached = false;
    // Guarded by FakeClock::mu_: Advance() has been told to set `reached` (so it does so once).
    bool waking = false;
    // Guarded by FakeClock::mu_: how many Advance() calls are about to lock `mu` for this waiter;
    // the waiter does not return (and `mu` may not go away) while it is non-zero.
    int pins = 0;
  };

  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  std::vector<Waiter*> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace iis
