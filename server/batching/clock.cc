#include "server/batching/clock.h"

#include <algorithm>

namespace iis {
namespace {

class WallClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) override {
    return mu->AwaitWithDeadline(cond, deadline);
  }
};

}  // namespace

Clock* RealClock() {
  static WallClock* const clock = new WallClock;
  return clock;
}

FakeClock::FakeClock(absl::Time start) : now_(start) {}

FakeClock::~FakeClock() = default;

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

// Lock order: the waiter's `mu` before this clock's `mu_`; Advance() never holds `mu_` while it
// takes a waiter's mutex, and the waiter drops `mu` while it waits for Advance() to unpin it.
bool FakeClock::AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                                  absl::Time deadline) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  Waiter waiter;
  waiter.mu = mu;
  waiter.deadline = deadline;
  {
    absl::MutexLock lock(&mu_);
    waiter.reached = now_ >= deadline;
    waiter.waking = waiter.reached;
    waiters_.push_back(&waiter);
  }
  // Only state guarded by `mu` is read: `reached` is written under `mu` by Advance().
  auto ready = [&waiter, &cond] { return waiter.reached || cond.Eval(); };
  mu->Await(absl::Condition(&ready));

  bool pinned = false;
  {
    absl::MutexLock lock(&mu_);
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &waiter));
    pinned = waiter.pins > 0;
  }
  if (pinned) {
    // An Advance() is about to lock `mu` for this waiter: let it finish before `waiter` goes away.
    mu->Unlock();
    {
      absl::MutexLock lock(&mu_);
      auto unpinned = [&waiter]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return waiter.pins == 0; };
      mu_.Await(absl::Condition(&unpinned));
    }
    mu->Lock();
  }
  return cond.Eval();
}

void FakeClock::Advance(absl::Duration d) {
  std::vector<Waiter*> to_wake;
  {
    absl::MutexLock lock(&mu_);
    if (d > absl::ZeroDuration()) now_ += d;
    for (Waiter* waiter : waiters_) {
      if (!waiter->waking && now_ >= waiter->deadline) {
        waiter->waking = true;
        ++waiter->pins;
        to_wake.push_back(waiter);
      }
    }
  }
  for (Waiter* waiter : to_wake) {
    // Unlocking `mu` makes absl re-evaluate the waiter's condition, which now holds.
    waiter->mu->Lock();
    waiter->reached = true;
    waiter->mu->Unlock();
  }
  absl::MutexLock lock(&mu_);
  for (Waiter* waiter : to_wake) --waiter->pins;
}

bool FakeClock::BlockUntilWaiter(absl::Time deadline, absl::Duration real_timeout) {
  absl::MutexLock lock(&mu_);
  auto has_waiter = [this, deadline]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::any_of(waiters_.begin(), waiters_.end(),
                       [deadline](const Waiter* w) { return w->deadline == deadline; });
  };
  return mu_.AwaitWithTimeout(absl::Condition(&has_waiter), real_timeout);
}

int FakeClock::NumWaiters() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(waiters_.size());
}

}  // namespace iis
