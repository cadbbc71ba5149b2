#include "common/thread_pool.h"

#include <atomic>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::common {
namespace {

using ::testing::HasSubstr;

const absl::Duration kTestTimeout = absl::Seconds(60);

std::unique_ptr<ThreadPool> MakePool(int num_threads) {
  ThreadPool::Options options;
  options.num_threads = num_threads;
  absl::StatusOr<std::unique_ptr<ThreadPool>> pool = ThreadPool::Create(options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return pool.ok() ? *std::move(pool) : nullptr;
}

TEST(ThreadPoolTest, RejectsBadThreadCounts) {
  for (int n : {0, -3, ThreadPool::Options::kMaxThreads + 1}) {
    ThreadPool::Options options;
    options.num_threads = n;
    absl::StatusOr<std::unique_ptr<ThreadPool>> pool = ThreadPool::Create(options);
    EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(pool.status().message(), HasSubstr("num_threads"));
    EXPECT_THAT(pool.status().message(), HasSubstr(absl::StrCat("got ", n)));
  }
}

TEST(ThreadPoolTest, OneThreadRunsClosuresInScheduleOrder) {
  absl::Mutex mu;
  std::vector<int> order;
  {
    std::unique_ptr<ThreadPool> pool = MakePool(1);
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(pool->num_threads(), 1);
    for (int i = 0; i < 100; ++i) {
      pool->Schedule([&mu, &order, i] {
        absl::MutexLock lock(&mu);
        order.push_back(i);
      });
    }
    pool->Schedule(nullptr);  // ignored
  }                           // the destructor runs everything queued
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(ThreadPoolTest, ThreadsRunClosuresInParallel) {
  constexpr int kThreads = 4;
  std::unique_ptr<ThreadPool> pool = MakePool(kThreads);
  ASSERT_NE(pool, nullptr);
  absl::Mutex mu;
  int inside = 0;
  bool all_seen = false;
  // Each closure waits until all kThreads are inside at once, which only a pool of kThreads
  // workers can achieve.
  for (int i = 0; i < kThreads; ++i) {
    pool->Schedule([&] {
      absl::MutexLock lock(&mu);
      ++inside;
      if (inside == kThreads) all_seen = true;
      mu.AwaitWithTimeout(absl::Condition(&all_seen), kTestTimeout);
    });
  }
  pool.reset();
  EXPECT_TRUE(all_seen);
  EXPECT_EQ(inside, kThreads);
}

TEST(ThreadPoolTest, DestructorFinishesWorkScheduledByWorkers) {
  std::atomic<int> ran{0};
  {
    std::unique_ptr<ThreadPool> pool = MakePool(2);
    ASSERT_NE(pool, nullptr);
    ThreadPool* raw = pool.get();
    for (int i = 0; i < 10; ++i) {
      pool->Schedule([raw, &ran] {
        ++ran;
        raw->Schedule([&ran] { ++ran; });
      });
    }
  }
  EXPECT_EQ(ran, 20);
}

TEST(ThreadPoolTest, SchedulesMoveOnlyClosures) {
  std::atomic<int> seen{0};
  {
    std::unique_ptr<ThreadPool> pool = MakePool(1);
    ASSERT_NE(pool, nullptr);
    auto value = std::make_unique<int>(7);
    pool->Schedule([value = std::move(value), &seen] { seen = *value; });
  }
  EXPECT_EQ(seen, 7);
}

TEST(ThreadPoolTest, RunAndWaitReturnsTheResultFromAWorker) {
  std::unique_ptr<ThreadPool> pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  EXPECT_FALSE(pool->IsWorkerThread());
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran_on;
  const int result = pool->RunAndWait([&] {
    ran_on = std::this_thread::get_id();
    return 42;
  });
  EXPECT_EQ(result, 42);
  EXPECT_NE(ran_on, caller);
}

TEST(ThreadPoolTest, RunAndWaitFromAWorkerRunsInline) {
  std::unique_ptr<ThreadPool> pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  // On a one-thread pool a nested RunAndWait that queued its work would wait for itself forever.
  const int result = pool->RunAndWait([&] {
    EXPECT_TRUE(pool->IsWorkerThread());
    return pool->RunAndWait([] { return 5; }) + 1;
  });
  EXPECT_EQ(result, 6);
}

TEST(ThreadPoolTest, RunAndWaitRethrowsWhatTheClosureThrew) {
  std::unique_ptr<ThreadPool> pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  EXPECT_THROW(pool->RunAndWait([]() -> int { throw std::runtime_error("boom"); }),
               std::runtime_error);
  EXPECT_EQ(pool->RunAndWait([] { return 1; }), 1);  // the worker survived
}

}  // namespace
}  // namespace iis::common
