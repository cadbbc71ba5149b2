#include "client/loadgen/runner.h"

#include <sys/resource.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "client/common/exit_codes.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "internimage/serving/v1/vision.pb.h"

namespace iis::client {
namespace {

namespace pb = ::internimage::serving::v1;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
// Open-loop rates (calls/s) from which arrivals are sent by several threads, and their number.
constexpr double kParallelSendRate = 2000;
constexpr int kMaxSenders = 4;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

std::string StepLabel(const LoadStep& step) {
  return step.concurrency > 0 ? absl::StrFormat("concurrency %d", step.concurrency)
                              : absl::StrFormat("rate %g/s", step.rate);
}

}  // namespace

// The state of one running step. Shared by the caller and every call in flight (each holds a
// reference), so the last completion callback may outlive Run() without touching freed memory.
class LoadRunner::Step : public std::enable_shared_from_this<LoadRunner::Step> {
 public:
  Step(const LoadStep& step, const RunOptions& options, const Workload& workload,
       std::vector<grpc::GenericStub*> stubs, std::vector<int> target_of_stub, int target_count)
      : step_(step),
        options_(options),
        workload_(workload),
        stubs_(std::move(stubs)),
        target_of_stub_(std::move(target_of_stub)),
        budget_(options.requests > 0 ? options.requests : kNever) {
    result_.step = step;
    result_.ok_per_target.assign(target_count, 0);
    result_.failed_per_target.assign(target_count, 0);
  }

  StepResult Run() {
    const double cpu_start = ProcessCpuSeconds();
    start_ns_ = NowNs();
    warmup_end_ns_ = start_ns_ + absl::ToInt64Nanoseconds(options_.warmup);
    end_ns_ = options_.duration > absl::ZeroDuration()
                  ? warmup_end_ns_ + absl::ToInt64Nanoseconds(options_.duration)
                  : kNever;
    std::thread progress;
    if (options_.progress) progress = std::thread([this] { ProgressLoop(); });
    if (step_.concurrency > 0) {
      int started = 0;
      while (started < step_.concurrency && SendNextClosed()) ++started;
    } else {
      RunOpenLoop();
    }
    {
      absl::MutexLock lock(&mu_);
      sending_done_ = true;
      mu_.Await(absl::Condition(this, &Step::Finished));
    }
    if (progress.joinable()) progress.join();
    absl::MutexLock lock(&mu_);
    StepResult result = std::move(result_);
    result.interrupted = Interrupted();
    if (last_completion_ns_ > warmup_end_ns_ && result.sent > 0) {
      result.elapsed_s = (last_completion_ns_ - warmup_end_ns_) * 1e-9;
      result.throughput_rps = result.ok / result.elapsed_s;
    }
    ServerTiming& server = result.server;
    if (server.answers > 0) {
      const double n = static_cast<double>(server.answers);
      server.queue_us /= n;
      server.preprocess_us /= n;
      server.inference_us /= n;
      server.postprocess_us /= n;
      server.total_us /= n;
      server.batch_size /= n;
    }
    if (lag_count_ > 0) result.send_lag_mean_ms = lag_sum_ns_ / lag_count_ * 1e-6;
    result.send_lag_max_ms = lag_max_ns_ * 1e-6;
    result.cpu_s = ProcessCpuSeconds() - cpu_start;
    return result;
  }

 private:
  struct Call {
    std::shared_ptr<Step> step;
    grpc::ClientContext context;
    grpc::ByteBuffer response;
    int64_t intended_ns = 0;
    size_t stub = 0;
    bool measured = false;
  };

  bool Interrupted() const {
    return options_.interrupt != nullptr && options_.interrupt->load(std::memory_order_relaxed);
  }

  bool Finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return sending_done_ && outstanding_ == 0;
  }

  bool BelowOutstandingLimit() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outstanding_ < options_.max_outstanding;
  }

  // Claims one call of the measured budget; false once it is spent.
  bool ClaimMeasured() { return budget_.fetch_sub(1, std::memory_order_relaxed) > 0; }

  // Closed loop: sends the next call now unless the step is over.
  bool SendNextClosed() {
    const int64_t now = NowNs();
    if (now >= end_ns_ || Interrupted()) return false;
    const bool measured = now >= warmup_end_ns_;
    if (measured && !ClaimMeasured()) return false;
    Send(now, measured);
    return true;
  }

  // Open loop: sends the schedule's arrivals on time. Above kParallelSendRate the arrivals are
  // dealt round-robin to several sender threads (each walks the same seeded schedule), so the
  // cost of starting calls is spread over cores instead of making one thread fall behind.
  void RunOpenLoop() {
    const int senders =
        step_.rate >= kParallelSendRate
            ? std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kMaxSenders)
            : 1;
    std::vector<std::thread> helpers;
    for (int k = 1; k < senders; ++k) {
      helpers.emplace_back([this, k, senders] { SendArrivals(k, senders); });
    }
    SendArrivals(0, senders);
    for (std::thread& helper : helpers) helper.join();
  }

  // Sends arrivals k, k + n, k + 2n, ... of the schedule at their intended times.
  void SendArrivals(int k, int n) {
#ifdef __linux__
    // Wake up within a microsecond of the intended time rather than the default 50 us.
    prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif
    ArrivalSchedule schedule(options_.arrivals, step_.rate, options_.seed);
    for (int64_t index = 0;; ++index) {
      const int64_t intended = start_ns_ + schedule.NextOffsetNs();
      if (intended >= end_ns_) return;
      if (index % n != k) continue;
      const bool measured = intended >= warmup_end_ns_;
      if (measured && !ClaimMeasured()) return;
      // Sleep in slices so an interrupt is noticed even at very low rates.
      for (int64_t now = NowNs(); now < intended; now = NowNs()) {
        if (Interrupted()) return;
        std::this_thread::sleep_for(
            std::chrono::nanoseconds(std::min<int64_t>(intended - now, 100'000'000)));
      }
      if (Interrupted()) return;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Step::BelowOutstandingLimit));
      }
      Send(intended, measured);
    }
  }

  void Send(int64_t intended_ns, bool measured) {
    auto* call = new Call;
    call->step = shared_from_this();
    call->intended_ns = intended_ns;
    call->measured = measured;
    const uint64_t sequence = sequence_.fetch_add(1, std::memory_order_relaxed);
    call->stub = sequence % stubs_.size();
    const grpc::ByteBuffer& payload = workload_.payload(sequence / stubs_.size());
    call->context.set_deadline(std::chrono::system_clock::now() +
                               absl::ToChronoNanoseconds(options_.deadline));
    {
      absl::MutexLock lock(&mu_);
      ++outstanding_;
      if (measured) {
        ++result_.sent;
      } else {
        ++result_.warmup_calls;
      }
      if (step_.concurrency == 0) {
        const int64_t lag = std::max<int64_t>(0, NowNs() - intended_ns);
        lag_sum_ns_ += static_cast<double>(lag);
        ++lag_count_;
        lag_max_ns_ = std::max(lag_max_ns_, lag);
      }
    }
    stubs_[call->stub]->UnaryCall(
        &call->context, workload_.method(), grpc::StubOptions(), &payload, &call->response,
        [call](const grpc::Status& status) { call->step->OnDone(call, status); });
  }

  void OnDone(Call* call, const grpc::Status& status) {
    const int64_t now = NowNs();
    const int64_t latency = now - call->intended_ns;
    const bool measured = call->measured;
    const int target = target_of_stub_[call->stub];
    pb::ResponseMetadata metadata;
    const bool has_metadata = status.ok() && measured && workload_.answers_carry_metadata() &&
                              ExtractResponseMetadata(call->response, &metadata);
    // Send the replacement before this call stops counting as outstanding, so the step never
    // looks finished in between.
    if (step_.concurrency > 0) SendNextClosed();
    // Free the call (its ClientContext holds a reference to the channel) before it stops
    // counting: once Run() returns, the caller may drop the channels, and the last reference to a
    // channel must not go away on a gRPC callback thread.
    const std::shared_ptr<Step> self = std::move(call->step);
    delete call;
    const std::string code_name = status.ok() ? "" : StatusCodeName(status.error_code());
    absl::MutexLock lock(&mu_);
    if (status.ok()) interval_.Record(latency);
    ++interval_completions_;
    if (measured) {
      last_completion_ns_ = std::max(last_completion_ns_, now);
      if (status.ok()) {
        ++result_.ok;
        ++result_.ok_per_target[target];
        result_.latency.Record(latency);
      } else {
        ++result_.failed;
        ++result_.failed_per_target[target];
        ++result_.errors[code_name];
        result_.error_text.emplace(code_name, status.error_message());
      }
      if (has_metadata) {
        ServerTiming& server = result_.server;
        ++server.answers;
        server.queue_us += metadata.timing().queue_us();
        server.preprocess_us += metadata.timing().preprocess_us();
        server.inference_us += metadata.timing().inference_us();
        server.postprocess_us += metadata.timing().postprocess_us();
        server.total_us += metadata.timing().total_us();
        server.batch_size += metadata.batch_size();
      }
    }
    --outstanding_;
  }

  // Prints the figures of each second on one self-overwriting line until the step finishes.
  void ProgressLoop() {
    int64_t interval_start = NowNs();
    for (;;) {
      std::string line;
      {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(this, &Step::Finished), absl::Seconds(1))) {
          break;
        }
        const int64_t now = NowNs();
        const double seconds = std::max(1e-9, (now - interval_start) * 1e-9);
        line = absl::StrFormat(
            "\r\033[K[%s] %5.1fs  %8.1f req/s  ok %lld  errors %lld  p50 %.3f ms  p99 %.3f ms",
            StepLabel(step_), (now - start_ns_) * 1e-9, interval_completions_ / seconds,
            static_cast<long long>(result_.ok), static_cast<long long>(result_.failed),
            interval_.ValueAtPercentile(50) * 1e-6, interval_.ValueAtPercentile(99) * 1e-6);
        interval_.Reset();
        interval_completions_ = 0;
        interval_start = now;
      }
      std::fputs(line.c_str(), stderr);  // outside the lock: calls keep completing meanwhile
      std::fflush(stderr);
    }
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }

  const LoadStep step_;
  const RunOptions options_;
  const Workload& workload_;
  const std::vector<grpc::GenericStub*> stubs_;
  const std::vector<int> target_of_stub_;
  int64_t start_ns_ = 0;
  int64_t warmup_end_ns_ = 0;
  int64_t end_ns_ = kNever;
  std::atomic<uint64_t> sequence_{0};
  std::atomic<int64_t> budget_;

  absl::Mutex mu_;
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  bool sending_done_ ABSL_GUARDED_BY(mu_) = false;
  StepResult result_ ABSL_GUARDED_BY(mu_);
  int64_t last_completion_ns_ ABSL_GUARDED_BY(mu_) = 0;
  double lag_sum_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t lag_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t lag_max_ns_ ABSL_GUARDED_BY(mu_) = 0;
  // Progress line: figures since the last print.
  LatencyHistogram interval_ ABSL_GUARDED_BY(mu_);
  int64_t interval_completions_ ABSL_GUARDED_BY(mu_) = 0;
};

LoadRunner::LoadRunner(const std::vector<Endpoint>& endpoints, int target_count,
                       const Workload& workload, const RunOptions& options)
    : target_count_(target_count), workload_(workload), options_(options) {
  for (const Endpoint& endpoint : endpoints) {
    stubs_.push_back(std::make_unique<grpc::GenericStub>(endpoint.channel));
    target_of_stub_.push_back(endpoint.target_index);
  }
}

LoadRunner::~LoadRunner() = default;

StepResult LoadRunner::Run(const LoadStep& step) {
  std::vector<grpc::GenericStub*> stubs;
  for (const auto& stub : stubs_) stubs.push_back(stub.get());
  auto state = std::make_shared<Step>(step, options_, workload_, std::move(stubs), target_of_stub_,
                                      target_count_);
  return state->Run();
}

}  // namespace iis::client
