#include "server/metrics/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <map>
#include <sstream>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "server/metrics/http_endpoint.h"

namespace iis {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// Request and stage latencies: 100 us (a GPU queue wait) to 60 s (a large CPU detection batch).
const Histogram::BucketBoundaries& LatencyBuckets() {
  static const Histogram::BucketBoundaries kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
  return kBuckets;
}
const Histogram::BucketBoundaries& BatchSizeBuckets() {
  static const Histogram::BucketBoundaries kBuckets = {1, 2, 4, 8, 16, 32, 64, 128};
  return kBuckets;
}

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

prometheus::ClientMetric GaugeSample(double value,
                                     std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  return metric;
}

// Samples taken at scrape time: process memory and CPU from the kernel, GPU memory from the
// registered source.
class ScrapeTimeCollector : public prometheus::Collectable {
 public:
  void SetGpuMemorySource(std::function<std::vector<Metrics::GpuMemory>()> fn) {
    absl::MutexLock lock(&mu_);
    gpu_source_ = std::move(fn);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families;
    if (long pages = ResidentPages(); pages >= 0) {
      families.push_back({"process_resident_memory_bytes",
                          "Resident memory size in bytes.",
                          prometheus::MetricType::Gauge,
                          {GaugeSample(static_cast<double>(pages) * sysconf(_SC_PAGESIZE))}});
    }
    rusage usage{};
    if (getrusage(RUSAGE_SELF, &usage) == 0) {
      prometheus::ClientMetric cpu;
      cpu.counter.value = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                          (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
      families.push_back({"process_cpu_seconds_total",
                          "Total user and system CPU time spent.",
                          prometheus::MetricType::Counter,
                          {cpu}});
    }
    std::function<std::vector<Metrics::GpuMemory>()> source;
    {
      absl::MutexLock lock(&mu_);
      source = gpu_source_;
    }
    if (source) {
      prometheus::MetricFamily allocated{"iis_gpu_memory_allocated_bytes",
                                         "GPU memory held by tensors, per device.",
                                         prometheus::MetricType::Gauge,
                                         {}};
      prometheus::MetricFamily reserved{"iis_gpu_memory_reserved_bytes",
                                        "GPU memory reserved by the caching allocator, per device.",
                                        prometheus::MetricType::Gauge,
                                        {}};
      for (const Metrics::GpuMemory& gpu : source()) {
        allocated.metric.push_back(
            GaugeSample(static_cast<double>(gpu.allocated_bytes), {{"device", gpu.device}}));
        reserved.metric.push_back(
            GaugeSample(static_cast<double>(gpu.reserved_bytes), {{"device", gpu.device}}));
      }
      families.push_back(std::move(allocated));
      families.push_back(std::move(reserved));
    }
    return families;
  }

 private:
  // Returns the resident set size in pages (second field of /proc/self/statm), or -1.
  static long ResidentPages() {
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr) return -1;
    long size = 0, resident = -1;
    if (std::fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    std::fclose(f);
    return resident;
  }

  mutable absl::Mutex mu_;
  std::function<std::vector<Metrics::GpuMemory>()> gpu_source_ ABSL_GUARDED_BY(mu_);
};

class ModelMetricsImpl : public ModelMetrics {
 public:
  ModelMetricsImpl(Histogram& queue, Histogram& preprocess, Histogram& inference,
                   Histogram& postprocess, Histogram& batch_size, Gauge& queue_depth,
                   Gauge& load_time, Gauge& queue_capacity)
      : queue_(queue),
        preprocess_(preprocess),
        inference_(inference),
        postprocess_(postprocess),
        batch_size_(batch_size),
        queue_depth_(queue_depth),
        load_time_(load_time),
        queue_capacity_(queue_capacity) {}

  void ObserveQueue(absl::Duration d) override { queue_.Observe(Seconds(d)); }
  void ObservePreprocess(absl::Duration d) override { preprocess_.Observe(Seconds(d)); }
  void ObservePostprocess(absl::Duration d) override { postprocess_.Observe(Seconds(d)); }
  void ObserveBatch(absl::Duration inference, int batch_size) override {
    inference_.Observe(Seconds(inference));
    batch_size_.Observe(batch_size);
  }
  void AddQueueDepth(int delta) override { queue_depth_.Increment(delta); }
  void SetLoadTime(absl::Duration d) override { load_time_.Set(Seconds(d)); }
  void SetQueueCapacity(int capacity) override { queue_capacity_.Set(capacity); }

 private:
  Histogram& queue_;
  Histogram& preprocess_;
  Histogram& inference_;
  Histogram& postprocess_;
  Histogram& batch_size_;
  Gauge& queue_depth_;
  Gauge& load_time_;
  Gauge& queue_capacity_;
};

class MetricsImpl : public Metrics {
 public:
  MetricsImpl()
      : registry_(std::make_shared<prometheus::Registry>()),
        scrape_time_(std::make_shared<ScrapeTimeCollector>()),
        requests_(prometheus::BuildCounter()
                      .Name("iis_requests_total")
                      .Help("Finished RPCs by model, method and gRPC status code.")
                      .Register(*registry_)),
        request_duration_(prometheus::BuildHistogram()
                              .Name("iis_request_duration_seconds")
                              .Help("RPC latency on the server, from the handler to the answer.")
                              .Register(*registry_)),
        inflight_(prometheus::BuildGauge()
                      .Name("iis_inflight_requests")
                      .Help("RPCs accepted and not yet answered.")
                      .Register(*registry_)),
        queue_(prometheus::BuildHistogram()
                   .Name("iis_queue_duration_seconds")
                   .Help("Time from arrival to the start of the forward pass, minus "
                         "preprocessing.")
                   .Register(*registry_)),
        preprocess_(prometheus::BuildHistogram()
                        .Name("iis_preprocess_duration_seconds")
                        .Help("Decode, resize and normalise time per request.")
                        .Register(*registry_)),
        inference_(prometheus::BuildHistogram()
                       .Name("iis_inference_duration_seconds")
                       .Help("Forward pass time per batch.")
                       .Register(*registry_)),
        postprocess_(prometheus::BuildHistogram()
                         .Name("iis_postprocess_duration_seconds")
                         .Help("Postprocessing time per request (NMS, masks, label maps).")
                         .Register(*registry_)),
        batch_size_(prometheus::BuildHistogram()
                        .Name("iis_batch_size")
                        .Help("Requests per forward pass.")
                        .Register(*registry_)),
        queue_depth_(prometheus::BuildGauge()
                         .Name("iis_queue_depth")
                         .Help("Requests accepted and not yet running (preprocessing or queued).")
                         .Register(*registry_)),
        load_time_(prometheus::BuildGauge()
                       .Name("iis_model_load_duration_seconds")
                       .Help("Time to build, load and warm up the model.")
                       .Register(*registry_)),
        queue_capacity_(prometheus::BuildGauge()
                            .Name("iis_queue_capacity")
                            .Help("Most requests the model admits at a time (max_queue_size): "
                                  "iis_queue_depth as a share of it is the queue's saturation.")
                            .Register(*registry_)) {}

  absl::Status Serve(const Options& options) {
    if (options.port < 0) return absl::OkStatus();
    auto endpoint = MetricsHttpEndpoint::Start(options.bind_address, options.port,
                                               [this] { return Serialize(); });
    if (!endpoint.ok()) return endpoint.status();
    endpoint_ = *std::move(endpoint);
    port_ = endpoint_->port();
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  ModelMetrics* ForModel(const std::string& model) override {
    absl::MutexLock lock(&mu_);
    std::unique_ptr<ModelMetricsImpl>& slot = models_[model];
    if (slot == nullptr) {
      const prometheus::Labels labels = {{"model", model}};
      slot = std::make_unique<ModelMetricsImpl>(
          queue_.Add(labels, LatencyBuckets()), preprocess_.Add(labels, LatencyBuckets()),
          inference_.Add(labels, LatencyBuckets()), postprocess_.Add(labels, LatencyBuckets()),
          batch_size_.Add(labels, BatchSizeBuckets()), queue_depth_.Add(labels),
          load_time_.Add(labels), queue_capacity_.Add(labels));
    }
    return slot.get();
  }

  void ObserveRequest(const std::string& model, const std::string& method, const std::string& code,
                      absl::Duration latency) override {
    Counter* counter;
    Histogram* duration;
    {
      absl::MutexLock lock(&mu_);
      RequestInstruments& instruments = ForRequestLocked(model, method);
      Counter*& slot = instruments.by_code[code];
      if (slot == nullptr) {
        slot = &requests_.Add({{"model", model}, {"method", method}, {"code", code}});
      }
      counter = slot;
      duration = instruments.duration;
    }
    counter->Increment();
    duration->Observe(Seconds(latency));
  }

  void AddInFlight(const std::string& model, const std::string& method, int delta) override {
    Gauge* inflight;
    {
      absl::MutexLock lock(&mu_);
      inflight = ForRequestLocked(model, method).inflight;
    }
    inflight->Increment(delta);
  }

  void SetGpuMemorySource(std::function<std::vector<GpuMemory>()> fn) override {
    scrape_time_->SetGpuMemorySource(std::move(fn));
  }

  std::string Serialize() const override {
    std::vector<prometheus::MetricFamily> families = registry_->Collect();
    for (prometheus::MetricFamily& family : scrape_time_->Collect()) {
      families.push_back(std::move(family));
    }
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, families);
    return out.str();
  }

 private:
  // The instruments of one (model, method) pair, found with one map lookup per call.
  struct RequestInstruments {
    Histogram* duration = nullptr;
    Gauge* inflight = nullptr;
    std::map<std::string, Counter*> by_code;
  };

  RequestInstruments& ForRequestLocked(const std::string& model, const std::string& method)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RequestInstruments& instruments = requests_by_key_[std::make_pair(model, method)];
    if (instruments.duration == nullptr) {
      const prometheus::Labels labels = {{"model", model}, {"method", method}};
      instruments.duration = &request_duration_.Add(labels, LatencyBuckets());
      instruments.inflight = &inflight_.Add(labels);
    }
    return instruments;
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<ScrapeTimeCollector> scrape_time_;
  Family<Counter>& requests_;
  Family<Histogram>& request_duration_;
  Family<Gauge>& inflight_;
  Family<Histogram>& queue_;
  Family<Histogram>& preprocess_;
  Family<Histogram>& inference_;
  Family<Histogram>& postprocess_;
  Family<Histogram>& batch_size_;
  Family<Gauge>& queue_depth_;
  Family<Gauge>& load_time_;
  Family<Gauge>& queue_capacity_;
  int port_ = -1;

  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<ModelMetricsImpl>> models_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, RequestInstruments> requests_by_key_
      ABSL_GUARDED_BY(mu_);

  // Declared last so it stops serving before the instruments above are destroyed.
  std::unique_ptr<MetricsHttpEndpoint> endpoint_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Create(const Options& options) {
  if (options.port < -1 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics port must be -1 (off) or in [0, 65535], got ", options.port));
  }
  auto metrics = std::make_unique<MetricsImpl>();
  if (absl::Status status = metrics->Serve(options); !status.ok()) return status;
  return metrics;
}

}  // namespace iis
