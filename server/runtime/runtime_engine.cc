#include "server/runtime/runtime_engine.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/batching/thread_pool.h"
#include "server/common/logging.h"
#include "server/runtime/model_runner.h"
#include "server/runtime/network.h"

namespace iis {
namespace {

using internimage::serving::v1::ServerConfig;

// The Engine over the LibTorch runtime: a worker pool shared by all models and one ModelRunner
// per served model. Thread-safe.
class RuntimeEngine final : public Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const ServerConfig& config,
                                                        Metrics* metrics) {
    std::unique_ptr<RuntimeEngine> engine(new RuntimeEngine());
    ThreadPool::Options pool_options;
    pool_options.num_threads = std::max(1, config.worker_threads());
    auto pool = ThreadPool::Create(pool_options);
    if (!pool.ok()) return pool.status();
    engine->pool_ = *std::move(pool);
    runtime::SetCpuInferenceThreads(config.cpu_inference_threads());

    for (const auto& mc : config.models()) {
      const absl::Time start = absl::Now();
      Log(LogSeverity::kInfo, absl::StrCat("loading model \"", mc.name(), "\" (", mc.architecture(),
                                           ", device ", mc.device(), ", ", mc.instances(),
                                           " instance(s))"));
      absl::StatusOr<runtime::LoadedModel> loaded = runtime::LoadModel(mc);
      if (!loaded.ok()) {
        return absl::Status(loaded.status().code(), absl::StrCat("model \"", mc.name(), "\": ",
                                                                 loaded.status().message()));
      }
      loaded->metadata.is_default = mc.default_for_task();
      auto runner =
          runtime::ModelRunner::Create(*std::move(loaded), mc.batching(), engine->pool_.get(), metrics);
      if (!runner.ok()) return runner.status();
      if (mc.warmup_iterations() > 0) {
        if (absl::Status s = (*runner)->Warmup(mc.warmup_iterations()); !s.ok()) return s;
      }
      const absl::Duration took = absl::Now() - start;
      metrics->ForModel(mc.name())->SetLoadTime(took);
      metrics->ForModel(mc.name())->SetQueueCapacity((*runner)->metadata().batching.max_queue_size);
      const ModelMetadata& md = (*runner)->metadata();
      Log(LogSeverity::kInfo,
          absl::StrCat("model \"", md.name, "\" ready in ", absl::FormatDuration(took), " on ",
                       md.devices.empty() ? "?" : md.devices[0], ", weights: ",
                       md.weights_source, md.real_weights ? "" : " (RANDOM: answers are meaningless)"));
      if (md.is_default) engine->defaults_[md.task] = md.name;
      engine->runners_[md.name] = *std::move(runner);
    }
    bool uses_cuda = false;
    for (const auto& [name, runner] : engine->runners_) {
      for (const std::string& device : runner->metadata().devices) uses_cuda |= device != "cpu";
    }
    if (uses_cuda) {
      metrics->SetGpuMemorySource([] {
        std::vector<Metrics::GpuMemory> out;
        for (const runtime::GpuMemoryUse& use : runtime::SampleGpuMemory()) {
          out.push_back({use.device, use.allocated_bytes, use.reserved_bytes});
        }
        return out;
      });
    }
    return std::unique_ptr<Engine>(std::move(engine));
  }

  ~RuntimeEngine() override {
    (void)Drain(absl::ZeroDuration());
    runners_.clear();
    pool_.reset();
  }

  void Submit(std::unique_ptr<InferenceRequest> request) override {
    std::string name = request->model;
    if (name.empty()) {
      auto it = defaults_.find(request->task);
      if (it == defaults_.end()) {
        request->done(absl::NotFoundError(
            absl::StrCat("no ", std::string(TaskName(request->task)), " model is served")));
        return;
      }
      name = it->second;
    }
    auto it = runners_.find(name);
    if (it == runners_.end()) {
      request->done(absl::NotFoundError(absl::StrCat("model \"", std::string(name), "\" is not served")));
      return;
    }
    runtime::ModelRunner& runner = *it->second;
    if (runner.metadata().task != request->task) {
      request->done(absl::InvalidArgumentError(
          absl::StrCat("model \"", name, "\" serves ", std::string(TaskName(runner.metadata().task)), ", not ",
                       std::string(TaskName(request->task)))));
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      if (draining_) {
        request->done(absl::UnavailableError("server is shutting down"));
        return;
      }
      ++in_flight_;
    }
    // Count the request until it is answered, so Drain can wait for it.
    auto done = std::move(request->done);
    request->done = [this, done = std::move(done)](absl::StatusOr<InferenceResponse> r) {
      done(std::move(r));
      absl::MutexLock lock(&mu_);
      --in_flight_;
    };
    request->model = name;
    runner.Submit(std::move(request));
  }

  std::vector<ModelMetadata> ListModels() const override {
    std::vector<ModelMetadata> out;
    for (const auto& [name, runner] : runners_) out.push_back(runner->metadata());
    return out;  // std::map: sorted by name
  }

  absl::StatusOr<ModelMetadata> GetModel(std::string_view name) const override {
    auto it = runners_.find(std::string(name));
    if (it == runners_.end()) return absl::NotFoundError(absl::StrCat("model \"", std::string(name), "\" is not served"));
    return it->second->metadata();
  }

  absl::StatusOr<std::string> DefaultModel(Task task) const override {
    auto it = defaults_.find(task);
    if (it == defaults_.end()) return absl::NotFoundError(absl::StrCat("no ", std::string(TaskName(task)), " model is served"));
    return it->second;
  }

  absl::Status Drain(absl::Duration grace) override {
    const absl::Time deadline = absl::Now() + grace;
    {
      absl::MutexLock lock(&mu_);
      draining_ = true;
    }
    absl::Status status;
    for (auto& [name, runner] : runners_) status.Update(runner->Drain(deadline));
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
    if (!mu_.AwaitWithDeadline(absl::Condition(&idle), deadline)) {
      status.Update(absl::DeadlineExceededError(
          absl::StrCat(in_flight_, " request(s) still running when the drain grace period ended")));
    }
    return status;
  }

 private:
  RuntimeEngine() = default;

  std::unique_ptr<ThreadPool> pool_;
  std::map<std::string, std::unique_ptr<runtime::ModelRunner>> runners_;  // fixed after Create
  std::map<Task, std::string> defaults_;                                 // fixed after Create
  mutable absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> CreateRuntimeEngine(const ServerConfig& config,
                                                            Metrics* metrics) {
  return RuntimeEngine::Create(config, metrics);
}

}  // namespace iis
