#include "server/runtime/runtime_engine.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/thread_pool.h"
#include "server/engine/model_catalog.h"
#include "server/runtime/model_runner.h"

namespace iis::runtime {
namespace {

using internimage::serving::v1::ModelConfig;
using internimage::serving::v1::ServerConfig;

// The Engine over the runtime core: a worker pool shared by all models and one ModelRunner per
// served model. Thread-safe.
class RuntimeEngine final : public Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const ServerConfig& config,
                                                        Metrics* metrics, RuntimeBackend backend) {
    if (!backend.load_model)
      return absl::InvalidArgumentError("RuntimeBackend.load_model is empty");
    std::unique_ptr<RuntimeEngine> engine(new RuntimeEngine());
    common::ThreadPool::Options pool_options;
    pool_options.num_threads = std::max(1, config.worker_threads());
    auto pool = common::ThreadPool::Create(pool_options);
    if (!pool.ok()) return pool.status();
    engine->pool_ = *std::move(pool);

    bool uses_cuda = false;
    std::vector<ModelMetadata> models;
    for (const ModelConfig& mc : config.models()) {
      absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
          LoadRunner(mc, backend, *engine, metrics);
      if (!runner.ok()) return runner.status();
      for (const std::string& device : (*runner)->metadata().devices) uses_cuda |= device != "cpu";
      models.push_back((*runner)->metadata());
      engine->runners_[mc.name()] = *std::move(runner);
    }
    engine->catalog_ = std::make_unique<ModelCatalog>(std::move(models));
    if (uses_cuda && backend.sample_gpu_memory) {
      metrics->SetGpuMemorySource(std::move(backend.sample_gpu_memory));
    }
    return std::unique_ptr<Engine>(std::move(engine));
  }

  ~RuntimeEngine() override {
    (void)Drain(absl::ZeroDuration());
    // The drain joined the batch threads; what is left on the pool (preprocessing, postprocessing)
    // still uses the runners, so the pool finishes first.
    pool_.reset();
    runners_.clear();
  }

  void Submit(std::unique_ptr<InferenceRequest> request) override {
    absl::StatusOr<const ModelMetadata*> model = catalog_->Resolve(request->task, request->model);
    if (!model.ok()) {
      request->done(model.status());
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
    request->model = (*model)->name;
    ModelRunner& runner = *runners_.at(request->model);
    runner.Submit(std::move(request));
  }

  std::vector<ModelMetadata> ListModels() const override { return catalog_->models(); }

  absl::StatusOr<ModelMetadata> GetModel(std::string_view name) const override {
    absl::StatusOr<const ModelMetadata*> model =
        catalog_->Find(absl::string_view(name.data(), name.size()), "name");
    if (!model.ok()) return model.status();
    return **model;
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

  // Loads one model, wraps it in a runner, warms it up and records its load time.
  static absl::StatusOr<std::unique_ptr<ModelRunner>> LoadRunner(const ModelConfig& mc,
                                                                 const RuntimeBackend& backend,
                                                                 RuntimeEngine& engine,
                                                                 Metrics* metrics) {
    const absl::Time start = absl::Now();
    common::Log(common::LogSeverity::kInfo,
                absl::StrCat("loading model \"", mc.name(), "\" (", mc.architecture(), ", device ",
                             mc.device(), ", ", mc.instances(), " instance(s))"));
    absl::StatusOr<LoadedModel> loaded = backend.load_model(mc);
    if (!loaded.ok()) {
      return absl::Status(loaded.status().code(),
                          absl::StrCat("model \"", mc.name(), "\": ", loaded.status().message()));
    }
    // What the configuration decides is taken from it, whatever the loader filled in.
    loaded->metadata.name = mc.name();
    loaded->metadata.version = mc.version();
    loaded->metadata.is_default = mc.default_for_task();
    auto runner = ModelRunner::Create(*std::move(loaded), mc, engine.pool_.get(), metrics);
    if (!runner.ok()) return runner.status();
    if (mc.warmup_iterations() > 0) {
      if (absl::Status s = (*runner)->Warmup(mc.warmup_iterations()); !s.ok()) return s;
    }
    const absl::Duration took = absl::Now() - start;
    ModelMetrics* model_metrics = metrics->ForModel(mc.name());
    model_metrics->SetLoadTime(took);
    model_metrics->SetQueueCapacity((*runner)->metadata().batching.max_queue_size);
    const ModelMetadata& md = (*runner)->metadata();
    common::Log(
        common::LogSeverity::kInfo,
        absl::StrCat("model \"", md.name, "\" ready in ", absl::FormatDuration(took), " on ",
                     md.devices.empty() ? "?" : md.devices[0], ", weights: ", md.weights_source,
                     md.real_weights ? "" : " (RANDOM: answers are meaningless)"));
    return runner;
  }

  std::unique_ptr<common::ThreadPool> pool_;
  std::map<std::string, std::unique_ptr<ModelRunner>> runners_;  // fixed after Create
  std::unique_ptr<ModelCatalog> catalog_;                        // fixed after Create
  mutable absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> CreateRuntimeEngine(const ServerConfig& config,
                                                            Metrics* metrics,
                                                            RuntimeBackend backend) {
  return RuntimeEngine::Create(config, metrics, std::move(backend));
}

}  // namespace iis::runtime
