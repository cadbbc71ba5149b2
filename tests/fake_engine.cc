#include "tests/fake_engine.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace iis {
namespace {

constexpr float kDefaultScoreThreshold = 0.05f;
constexpr int kDefaultMaxDetections = 100;
constexpr std::array<float, 3> kMean = {0.485f, 0.456f, 0.406f};
constexpr std::array<float, 3> kStd = {0.229f, 0.224f, 0.225f};

ModelMetadata MakeModel(std::string name, std::string version, Task task, bool is_default,
                        int width, int height, std::vector<std::string> classes,
                        int max_queue_size) {
  ModelMetadata m;
  m.name = std::move(name);
  m.architecture = "fake";
  m.version = std::move(version);
  m.task = task;
  m.is_default = is_default;
  m.input_width = width;
  m.input_height = height;
  m.class_names = std::move(classes);
  m.devices = {"cpu"};
  m.precision = "float32";
  m.batching.max_batch_size = 1;
  m.batching.max_queue_size = max_queue_size;
  m.real_weights = false;
  m.weights_source = "fake";
  return m;
}

// Decodes or unpacks the request's image into an RGB uint8 matrix of its original size.
absl::StatusOr<cv::Mat> ToRgb(const ImageInput& image) {
  switch (image.kind) {
    case ImageInput::Kind::kEncoded: {
      const cv::Mat bytes(1, static_cast<int>(image.bytes.size()), CV_8UC1,
                          const_cast<char*>(image.bytes.data()));
      cv::Mat bgr = cv::imdecode(bytes, cv::IMREAD_COLOR);
      if (bgr.empty()) return absl::InvalidArgumentError("cannot decode the image");
      cv::Mat rgb;
      cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
      return rgb;
    }
    case ImageInput::Kind::kRgb8:
      return cv::Mat(image.height, image.width, CV_8UC3, const_cast<char*>(image.bytes.data()))
          .clone();
    case ImageInput::Kind::kNormalizedChw: {
      cv::Mat rgb(image.height, image.width, CV_8UC3);
      const size_t plane = static_cast<size_t>(image.height) * image.width;
      for (int y = 0; y < image.height; ++y) {
        for (int x = 0; x < image.width; ++x) {
          for (int c = 0; c < 3; ++c) {
            float v;
            std::memcpy(&v, image.bytes.data() + 4 * (c * plane + y * image.width + x), 4);
            rgb.at<cv::Vec3b>(y, x)[c] = cv::saturate_cast<uchar>((v * kStd[c] + kMean[c]) * 255);
          }
        }
      }
      return rgb;
    }
  }
  return absl::InvalidArgumentError("unknown image kind");
}

// COCO uncompressed RLE of a binary mask: column-major runs, starting with a run of 0s.
RleMask Rle(const cv::Mat& mask) {
  RleMask rle{mask.rows, mask.cols, {}};
  bool value = false;
  uint32_t run = 0;
  for (int x = 0; x < mask.cols; ++x) {
    for (int y = 0; y < mask.rows; ++y) {
      const bool set = mask.at<uchar>(y, x) != 0;
      if (set != value) {
        rle.counts.push_back(run);
        run = 0;
        value = set;
      }
      ++run;
    }
  }
  rle.counts.push_back(run);
  return rle;
}

ClassifyResult Classify(const cv::Mat& rgb, const ClassifyOptions& options,
                        const ModelMetadata& model) {
  const cv::Scalar mean = cv::mean(rgb);
  const double sum = mean[0] + mean[1] + mean[2];
  ClassifyResult result;
  for (int c = 0; c < 3; ++c) {
    result.classes.push_back(
        {c, model.class_names[c], static_cast<float>(sum > 0 ? mean[c] / sum : 1.0 / 3)});
  }
  std::stable_sort(result.classes.begin(), result.classes.end(),
                   [](const ClassScore& a, const ClassScore& b) { return a.score > b.score; });
  const int top_k = options.top_k > 0 ? options.top_k : kDefaultTopK;
  result.classes.resize(std::min<size_t>(result.classes.size(), top_k));
  return result;
}

DetectResult Detect(const cv::Mat& rgb, const DetectOptions& options, const ModelMetadata& model) {
  const int w = rgb.cols, h = rgb.rows;
  cv::Mat gray, bright;
  cv::cvtColor(rgb, gray, cv::COLOR_RGB2GRAY);
  cv::compare(gray, 127, bright, cv::CMP_GT);

  struct Candidate {
    cv::Rect box;
    int class_id;
    float score;
    cv::Mat mask;
  };
  std::vector<Candidate> candidates;
  if (cv::countNonZero(bright) > 0) {
    candidates.push_back({cv::boundingRect(bright), 0, 0.9f, bright});
  }
  candidates.push_back({cv::Rect(0, 0, w, h), 1, 0.5f, cv::Mat(h, w, CV_8UC1, cv::Scalar(1))});
  const cv::Rect centre(w / 4, h / 4, 3 * w / 4 - w / 4, 3 * h / 4 - h / 4);
  cv::Mat centre_mask = cv::Mat::zeros(h, w, CV_8UC1);
  centre_mask(centre).setTo(1);
  candidates.push_back({centre, 2, 0.2f, centre_mask});

  const float threshold =
      options.score_threshold > 0 ? options.score_threshold : kDefaultScoreThreshold;
  const size_t limit = options.max_detections > 0 ? options.max_detections : kDefaultMaxDetections;
  DetectResult result{w, h, {}};
  for (const Candidate& c : candidates) {
    if (c.score <= threshold || result.objects.size() >= limit) continue;
    DetectedObject object;
    object.x1 = static_cast<float>(c.box.x);
    object.y1 = static_cast<float>(c.box.y);
    object.x2 = static_cast<float>(c.box.x + c.box.width);
    object.y2 = static_cast<float>(c.box.y + c.box.height);
    object.class_id = c.class_id;
    object.label = model.class_names[c.class_id];
    object.score = c.score;
    if (options.masks) object.mask = Rle(c.mask);
    result.objects.push_back(std::move(object));
  }
  return result;
}

absl::StatusOr<SegmentResult> Segment(const cv::Mat& rgb, const SegmentOptions& options,
                                      const ModelMetadata& model) {
  cv::Mat gray;
  cv::cvtColor(rgb, gray, cv::COLOR_RGB2GRAY);
  cv::Mat labels(gray.size(), CV_8UC1);
  std::array<int64_t, 4> counts{};
  for (int y = 0; y < gray.rows; ++y) {
    for (int x = 0; x < gray.cols; ++x) {
      const uchar label = gray.at<uchar>(y, x) / 64;
      labels.at<uchar>(y, x) = label;
      ++counts[label];
    }
  }
  SegmentResult result{rgb.cols, rgb.rows, "", {}};
  if (!options.counts_only) {
    std::vector<uchar> png;
    if (!cv::imencode(".png", labels, png)) return absl::InternalError("PNG encoding failed");
    result.label_png.assign(png.begin(), png.end());
  }
  for (int c = 0; c < 4; ++c) {
    if (counts[c] > 0) result.class_pixels.push_back({c, model.class_names[c], counts[c]});
  }
  std::stable_sort(result.class_pixels.begin(), result.class_pixels.end(),
                   [](const ClassPixels& a, const ClassPixels& b) { return a.pixels > b.pixels; });
  return result;
}

}  // namespace

FakeEngine::FakeEngine(const FakeEngineOptions& options) : options_(options) {
  const std::vector<std::string> colours = {"red", "green", "blue"};
  const int q = options.max_queue_size;
  catalog_ = std::make_unique<ModelCatalog>(std::vector<ModelMetadata>{
      MakeModel(kClassifier, "1", Task::kClassification, true, kClassifierInputSize,
                kClassifierInputSize, colours, q),
      MakeModel(kClassifierB, "2", Task::kClassification, false, kClassifierInputSize,
                kClassifierInputSize, colours, q),
      MakeModel(kDetector, "1", Task::kDetection, true, 1333, 800, {"bright", "image", "centre"},
                q),
      MakeModel(kSegmenter, "1", Task::kSegmentation, true, 512, 512,
                {"dark", "dim", "light", "bright"}, q),
  });
  paused_ = options.start_paused;
  for (int i = 0; i < options.worker_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

FakeEngine::~FakeEngine() {
  Drain(absl::ZeroDuration()).IgnoreError();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
}

std::vector<ModelMetadata> FakeEngine::ListModels() const { return catalog_->models(); }

absl::StatusOr<ModelMetadata> FakeEngine::GetModel(std::string_view name) const {
  absl::StatusOr<const ModelMetadata*> model =
      catalog_->Find(absl::string_view(name.data(), name.size()), "name");
  if (!model.ok()) return model.status();
  return **model;
}

void FakeEngine::Submit(std::unique_ptr<InferenceRequest> request) {
  absl::StatusOr<const ModelMetadata*> model = catalog_->Resolve(request->task, request->model);
  absl::Status refusal = model.status();
  if (model.ok()) request->model = (*model)->name;
  {
    absl::MutexLock lock(&mu_);
    ++submitted_;
    last_deadline_ = request->deadline;
    if (refusal.ok() && draining_) {
      refusal = absl::UnavailableError("the fake engine is draining");
    } else if (refusal.ok() &&
               static_cast<int>(queue_.size()) + running_ >= options_.max_queue_size) {
      refusal = absl::ResourceExhaustedError(absl::StrCat("queue of ", request->model, " is full (",
                                                          options_.max_queue_size, " requests)"));
    }
    if (refusal.ok()) {
      if (options_.metrics != nullptr) options_.metrics->ForModel(request->model)->AddQueueDepth(1);
      queue_.push_back(std::move(request));
      return;
    }
  }
  Answer(std::move(request), refusal);
}

void FakeEngine::WorkerLoop() {
  while (true) {
    std::vector<std::pair<std::unique_ptr<InferenceRequest>, absl::Status>> dropped;
    std::unique_ptr<InferenceRequest> next;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this] { return stopping_ || !queue_.empty(); };
      auto ready = [this] { return stopping_ || (!paused_ && !queue_.empty()); };
      mu_.Await(absl::Condition(&has_work));
      // While requests wait behind the gate, wake up every 2 ms to expire and drop them.
      if (!ready()) mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(2));
      if (stopping_ && queue_.empty()) return;
      const absl::Time now = absl::Now();
      for (auto it = queue_.begin(); it != queue_.end();) {
        absl::Status status;
        if ((*it)->deadline <= now) {
          status = absl::DeadlineExceededError("deadline passed while queued");
        } else if ((*it)->is_cancelled && (*it)->is_cancelled()) {
          status = absl::CancelledError("cancelled while queued");
        }
        if (status.ok()) {
          ++it;
          continue;
        }
        dropped.emplace_back(std::move(*it), status);
        it = queue_.erase(it);
      }
      if ((!paused_ || stopping_) && !queue_.empty()) {
        next = std::move(queue_.front());
        queue_.pop_front();
        ++running_;
      }
    }
    for (auto& [request, status] : dropped) {
      if (options_.metrics != nullptr)
        options_.metrics->ForModel(request->model)->AddQueueDepth(-1);
      Answer(std::move(request), status);
    }
    if (next != nullptr) {
      if (options_.metrics != nullptr) options_.metrics->ForModel(next->model)->AddQueueDepth(-1);
      Run(std::move(next));
      absl::MutexLock lock(&mu_);
      --running_;
    }
  }
}

void FakeEngine::Run(std::unique_ptr<InferenceRequest> request) {
  const ModelMetadata* model = *catalog_->Find(request->model);  // resolved by Submit
  const absl::Time start = absl::Now();
  Timing timing;
  timing.queue = start - request->arrival;
  absl::StatusOr<cv::Mat> rgb = ToRgb(request->image);
  const absl::Time decoded = absl::Now();
  timing.preprocess = decoded - start;
  if (!rgb.ok()) return Answer(std::move(request), rgb.status());
  if (options_.latency > absl::ZeroDuration()) absl::SleepFor(options_.latency);
  const absl::Time inferred = absl::Now();
  timing.inference = inferred - decoded;
  if (!options_.failure.ok()) return Answer(std::move(request), options_.failure);

  InferenceResponse response;
  response.model = model->name;
  response.model_version = model->version;
  response.batch_size = 1;
  if (const auto* classify = std::get_if<ClassifyOptions>(&request->options)) {
    response.result = Classify(*rgb, *classify, *model);
  } else if (const auto* detect = std::get_if<DetectOptions>(&request->options)) {
    response.result = Detect(*rgb, *detect, *model);
  } else {
    absl::StatusOr<SegmentResult> segment =
        Segment(*rgb, std::get<SegmentOptions>(request->options), *model);
    if (!segment.ok()) return Answer(std::move(request), segment.status());
    response.result = *std::move(segment);
  }
  const absl::Time end = absl::Now();
  timing.postprocess = end - inferred;
  timing.total = end - request->arrival;
  response.timing = timing;
  if (options_.metrics != nullptr) {
    ModelMetrics* metrics = options_.metrics->ForModel(model->name);
    metrics->ObserveQueue(timing.queue);
    metrics->ObservePreprocess(timing.preprocess);
    metrics->ObserveBatch(timing.inference, 1);
    metrics->ObservePostprocess(timing.postprocess);
  }
  Answer(std::move(request), std::move(response));
}

void FakeEngine::Answer(std::unique_ptr<InferenceRequest> request,
                        absl::StatusOr<InferenceResponse> answer) {
  // Count first: once done() has run, the caller may observe answered() right away.
  {
    absl::MutexLock lock(&mu_);
    ++answered_;
  }
  request->done(std::move(answer));
}

absl::Status FakeEngine::Drain(absl::Duration grace) {
  std::deque<std::unique_ptr<InferenceRequest>> cut_off;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    auto idle = [this] { return queue_.empty() && running_ == 0; };
    if (mu_.AwaitWithTimeout(absl::Condition(&idle), grace)) return absl::OkStatus();
    cut_off.swap(queue_);
  }
  for (std::unique_ptr<InferenceRequest>& request : cut_off) {
    if (options_.metrics != nullptr) options_.metrics->ForModel(request->model)->AddQueueDepth(-1);
    Answer(std::move(request), absl::UnavailableError("the server is shutting down"));
  }
  absl::MutexLock lock(&mu_);
  auto none_running = [this] { return running_ == 0; };
  mu_.Await(absl::Condition(&none_running));
  return absl::DeadlineExceededError(
      absl::StrCat("drain grace period of ", absl::FormatDuration(grace), " ran out"));
}

void FakeEngine::Pause() {
  absl::MutexLock lock(&mu_);
  paused_ = true;
}

void FakeEngine::Resume() {
  absl::MutexLock lock(&mu_);
  paused_ = false;
}

bool FakeEngine::WaitForQueued(int count, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto reached = [this, count] { return static_cast<int>(queue_.size()) >= count; };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

int64_t FakeEngine::submitted() const {
  absl::MutexLock lock(&mu_);
  return submitted_;
}

int64_t FakeEngine::answered() const {
  absl::MutexLock lock(&mu_);
  return answered_;
}

absl::Time FakeEngine::last_deadline() const {
  absl::MutexLock lock(&mu_);
  return last_deadline_;
}

}  // namespace iis
