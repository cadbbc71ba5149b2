// The runtime core over fake networks: model resolution, admission, deadlines, cancellation,
// batching, per-image retry, instance failure and drain, without LibTorch.
#include "server/runtime/runtime_engine.h"

#include <atomic>
#include <cstring>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config/server_config.h"
#include "server/runtime/testing/fake_network.h"

namespace iis::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_fakes::FakeLoader;
using testing_fakes::FakeModelSpec;
using testing_fakes::FakeNetworkControl;
using testing_fakes::kPoison;

constexpr absl::Duration kWait = absl::Seconds(30);
constexpr int kSide = 8;  // the fake classifier's input size

// One request's image and answer. The image bytes live here until the engine answers.
class Call {
 public:
  explicit Call(float value, Task task = Task::kClassification, std::string model = "")
      : chw_(3 * kSide * kSide, 0.5f) {
    chw_[0] = value;
    request_ = std::make_unique<InferenceRequest>();
    request_->task = task;
    request_->model = std::move(model);
    request_->image.kind = ImageInput::Kind::kNormalizedChw;
    request_->image.bytes =
        std::string_view(reinterpret_cast<const char*>(chw_.data()), chw_.size() * sizeof(float));
    request_->image.height = request_->image.width = kSide;
    if (task == Task::kDetection) request_->options = DetectOptions{};
    if (task == Task::kSegmentation) request_->options = SegmentOptions{};
    request_->done = [this](absl::StatusOr<InferenceResponse> answer) {
      promise_.set_value(std::move(answer));
    };
    answer_ = promise_.get_future();
  }

  InferenceRequest& request() { return *request_; }
  // Hands the request to `engine` (once).
  void SubmitTo(Engine& engine) { engine.Submit(std::move(request_)); }
  // Waits for the answer (once).
  absl::StatusOr<InferenceResponse> Get() {
    if (answer_.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      return absl::DeadlineExceededError("the test waited 30 s for an answer");
    }
    return answer_.get();
  }
  bool Answered() { return answer_.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }

 private:
  std::vector<float> chw_;
  std::unique_ptr<InferenceRequest> request_;
  std::promise<absl::StatusOr<InferenceResponse>> promise_;
  std::future<absl::StatusOr<InferenceResponse>> answer_;
};

// A classifier "cls" (default, 3 classes), a second classifier "cls_b", a detector "det" (2
// classes) and a segmenter "seg" (4 classes), each on fake networks with their own control.
class RuntimeEngineTest : public ::testing::Test {
 protected:
  void Start(int max_batch_size = 4, int max_queue_size = 8, int instances = 1,
             int worker_threads = 2, int warmup_iterations = -1) {
    ServerConfig config;
    auto add = [&](const std::string& name, const std::string& architecture) {
      auto* model = config.add_models();
      model->set_name(name);
      model->set_architecture(architecture);
      model->set_instances(instances);
      model->set_warmup_iterations(warmup_iterations);
      model->mutable_batching()->set_max_batch_size(max_batch_size);
      model->mutable_batching()->set_max_queue_size(max_queue_size);
      // A partial batch waits this long for requests still being prepared (and never otherwise),
      // so batches in these tests form the same way however slow the machine is.
      model->mutable_batching()->set_max_queue_delay_us(10'000'000);
    };
    add("cls", "fake_classifier");
    add("cls_b", "fake_classifier_b");
    add("det", "fake_detector");
    add("seg", "fake_segmenter");
    ApplyConfigDefaults(&config);
    config.set_worker_threads(worker_threads);
    // The fake architectures are not in the registry, so the defaults are marked here.
    for (int i : {0, 2, 3}) config.mutable_models(i)->set_default_for_task(true);
    RuntimeBackend backend;
    backend.load_model = FakeLoader({
        {"fake_classifier", FakeModelSpec{Task::kClassification, 3, classifier_, kSide}},
        {"fake_classifier_b", FakeModelSpec{Task::kClassification, 3, classifier_b_, kSide}},
        {"fake_detector", FakeModelSpec{Task::kDetection, 2, detector_, kSide}},
        {"fake_segmenter", FakeModelSpec{Task::kSegmentation, 4, segmenter_, kSide}},
    });
    Metrics::Options metrics_options;
    metrics_options.port = -1;
    metrics_ = *Metrics::Create(metrics_options);
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        CreateRuntimeEngine(config, metrics_.get(), std::move(backend));
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
  }

  void TearDown() override {
    classifier_->Open();
    detector_->Open();
    segmenter_->Open();
  }

  std::shared_ptr<FakeNetworkControl> classifier_ = std::make_shared<FakeNetworkControl>();
  std::shared_ptr<FakeNetworkControl> classifier_b_ = std::make_shared<FakeNetworkControl>();
  std::shared_ptr<FakeNetworkControl> detector_ = std::make_shared<FakeNetworkControl>();
  std::shared_ptr<FakeNetworkControl> segmenter_ = std::make_shared<FakeNetworkControl>();
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(RuntimeEngineTest, AnswersEveryTaskWithItsModelsOutput) {
  Start();
  Call classify(2.0f);
  classify.SubmitTo(*engine_);
  absl::StatusOr<InferenceResponse> c = classify.Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model, "cls");  // the default classifier
  EXPECT_EQ(c->model_version, "1");
  EXPECT_EQ(c->batch_size, 1);
  const auto& classes = std::get<ClassifyResult>(c->result).classes;
  ASSERT_EQ(classes.size(), 3u);  // top_k 0: the default 5, cut to the 3 classes
  EXPECT_EQ(classes[0].class_id, 2);
  EXPECT_EQ(classes[0].label, "c2");
  EXPECT_EQ(classes[0].score, 1.0f);
  EXPECT_GE(c->timing.total, c->timing.inference);

  Call detect(1.0f, Task::kDetection, "det");
  detect.SubmitTo(*engine_);
  absl::StatusOr<InferenceResponse> d = detect.Get();
  ASSERT_TRUE(d.ok()) << d.status();
  const auto& objects = std::get<DetectResult>(d->result).objects;
  ASSERT_EQ(objects.size(), 1u);
  EXPECT_EQ(objects[0].label, "c1");
  EXPECT_EQ(objects[0].x2, kSide);

  Call segment(3.0f, Task::kSegmentation);
  segment.SubmitTo(*engine_);
  absl::StatusOr<InferenceResponse> s = segment.Get();
  ASSERT_TRUE(s.ok()) << s.status();
  const auto& pixels = std::get<SegmentResult>(s->result).class_pixels;
  ASSERT_EQ(pixels.size(), 1u);
  EXPECT_EQ(pixels[0].class_id, 3);
  EXPECT_EQ(pixels[0].pixels, kSide * kSide);
}

TEST_F(RuntimeEngineTest, ResolvesModelsLikeTheCatalog) {
  Start();
  Call unknown(0.0f, Task::kClassification, "nope");
  unknown.SubmitTo(*engine_);
  EXPECT_EQ(unknown.Get().status().code(), absl::StatusCode::kNotFound);
  Call wrong_task(0.0f, Task::kClassification, "det");
  wrong_task.SubmitTo(*engine_);
  EXPECT_EQ(wrong_task.Get().status().message(), "model det serves detection, not classification");
  Call named(0.0f, Task::kClassification, "cls_b");
  named.SubmitTo(*engine_);
  ASSERT_TRUE(named.Get().ok());
  EXPECT_EQ(classifier_b_->images_run(), 1);
  EXPECT_EQ(classifier_->images_run(), 0);

  std::vector<std::string> names;
  for (const ModelMetadata& m : engine_->ListModels()) names.push_back(m.name);
  EXPECT_THAT(names, ElementsAre("cls", "cls_b", "det", "seg"));
  absl::StatusOr<ModelMetadata> det = engine_->GetModel("det");
  ASSERT_TRUE(det.ok());
  EXPECT_EQ(det->task, Task::kDetection);
  EXPECT_EQ(det->batching.max_batch_size, 4);
  EXPECT_EQ(engine_->GetModel("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RuntimeEngineTest, AFullQueueRefusesAtOnceAndAdmitsAgainWhenItEmpties) {
  Start(/*max_batch_size=*/1, /*max_queue_size=*/2);
  classifier_->Close();
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < 3; ++i) calls.push_back(std::make_unique<Call>(0.0f));
  calls[0]->SubmitTo(*engine_);
  ASSERT_TRUE(classifier_->WaitForHeld(1, kWait));  // running: no longer counts
  calls[1]->SubmitTo(*engine_);
  calls[2]->SubmitTo(*engine_);
  Call refused(0.0f);
  refused.SubmitTo(*engine_);
  ASSERT_TRUE(refused.Answered());  // at once, while the others wait
  const absl::Status full = refused.Get().status();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("queue of model cls is full"));
  classifier_->Open();
  for (auto& call : calls) EXPECT_TRUE(call->Get().ok());
  Call later(0.0f);
  later.SubmitTo(*engine_);
  EXPECT_TRUE(later.Get().ok());
}

TEST_F(RuntimeEngineTest, ExpiredAndCancelledRequestsNeverRun) {
  Start(/*max_batch_size=*/1);
  classifier_->Close();
  Call blocker(0.0f);
  blocker.SubmitTo(*engine_);
  ASSERT_TRUE(classifier_->WaitForHeld(1, kWait));
  Call expired(0.0f);
  expired.request().deadline = absl::Now() + absl::Milliseconds(50);
  expired.SubmitTo(*engine_);
  std::atomic<bool> cancel{false};
  Call cancelled(0.0f);
  cancelled.request().is_cancelled = [&cancel] { return cancel.load(); };
  cancelled.SubmitTo(*engine_);
  Call already_expired(0.0f);
  already_expired.request().deadline = absl::Now() - absl::Seconds(1);
  already_expired.SubmitTo(*engine_);
  absl::SleepFor(absl::Milliseconds(100));
  cancel = true;
  classifier_->Open();
  EXPECT_TRUE(blocker.Get().ok());
  EXPECT_EQ(expired.Get().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(cancelled.Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(already_expired.Get().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(classifier_->images_run(), 1);  // only the blocker ran
}

TEST_F(RuntimeEngineTest, QueuedRequestsRunTogetherInOneBatch) {
  Start(/*max_batch_size=*/4);
  classifier_->Close();
  Call first(0.0f);
  first.SubmitTo(*engine_);
  ASSERT_TRUE(classifier_->WaitForHeld(1, kWait));
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(std::make_unique<Call>(static_cast<float>(i)));
    calls.back()->SubmitTo(*engine_);
  }
  // The four are queued behind the running batch; the gate opens once they are all there.
  absl::SleepFor(absl::Milliseconds(200));
  classifier_->Open();
  ASSERT_TRUE(first.Get().ok());
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<InferenceResponse> answer = calls[i]->Get();
    ASSERT_TRUE(answer.ok()) << answer.status();
    EXPECT_EQ(answer->batch_size, 4);
    EXPECT_EQ(std::get<ClassifyResult>(answer->result).classes[0].class_id, i % 3);
  }
  EXPECT_THAT(classifier_->batch_sizes(), ElementsAre(1, 4));
}

TEST_F(RuntimeEngineTest, OneBadImageFailsAloneAndTheRestOfItsBatchIsAnswered) {
  Start(/*max_batch_size=*/3);
  classifier_->Close();
  Call first(0.0f);
  first.SubmitTo(*engine_);
  ASSERT_TRUE(classifier_->WaitForHeld(1, kWait));
  Call good_a(1.0f), bad(kPoison), good_b(2.0f);
  good_a.SubmitTo(*engine_);
  bad.SubmitTo(*engine_);
  good_b.SubmitTo(*engine_);
  absl::SleepFor(absl::Milliseconds(200));
  classifier_->Open();
  ASSERT_TRUE(first.Get().ok());
  absl::StatusOr<InferenceResponse> a = good_a.Get();
  absl::StatusOr<InferenceResponse> b = good_b.Get();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(std::get<ClassifyResult>(a->result).classes[0].class_id, 1);
  EXPECT_EQ(std::get<ClassifyResult>(b->result).classes[0].class_id, 2);
  absl::Status failed = bad.Get().status();
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(failed.message(), HasSubstr("inference failed: the fake network cannot run"));
  // The batch of three failed, then each image ran alone.
  EXPECT_THAT(classifier_->batch_sizes(), ElementsAre(1, 3, 1, 1, 1));
}

// Regression test: NaN or infinite tensor values used to be answered OK with NaN scores.
TEST_F(RuntimeEngineTest, NonFiniteTensorsAreRefusedBeforeTheyRun) {
  Start();
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    Call call(bad, Task::kSegmentation);
    call.SubmitTo(*engine_);
    absl::Status status = call.Get().status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("non-finite value")) << bad;
    EXPECT_THAT(status.message(), HasSubstr("channel 0, row 0, column 0")) << bad;
  }
  EXPECT_EQ(segmenter_->images_run(), 0);
}

TEST_F(RuntimeEngineTest, AFailingInstanceFailsItsRequestsAndTheServerCarriesOn) {
  Start(/*max_batch_size=*/1);
  classifier_->FailWith("CUDA error: device-side assert triggered");
  Call failed(0.0f);
  failed.SubmitTo(*engine_);
  absl::Status status = failed.Get().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("device-side assert"));
  Call other_model(0.0f, Task::kSegmentation);
  other_model.SubmitTo(*engine_);
  EXPECT_TRUE(other_model.Get().ok());
  classifier_->FailWith("");
  Call recovered(1.0f);
  recovered.SubmitTo(*engine_);
  EXPECT_TRUE(recovered.Get().ok());
}

// Regression test: a request still being preprocessed when the drain started used to be answered
// UNAVAILABLE ("queue ... is draining") while the drain reported success.
TEST_F(RuntimeEngineTest, DrainFinishesEveryAdmittedRequestAndRefusesNewOnes) {
  Start(/*max_batch_size=*/2);
  classifier_->Close();
  Call running(0.0f);
  running.SubmitTo(*engine_);
  ASSERT_TRUE(classifier_->WaitForHeld(1, kWait));
  Call queued(1.0f);
  queued.SubmitTo(*engine_);
  // Held inside preprocessing: the runtime asks whether the request was cancelled when its
  // preprocessing starts, on the worker pool.
  absl::Notification in_preprocessing, release;
  Call preprocessing(2.0f);
  preprocessing.request().is_cancelled = [&] {
    if (!in_preprocessing.HasBeenNotified()) in_preprocessing.Notify();
    release.WaitForNotification();
    return false;
  };
  preprocessing.SubmitTo(*engine_);
  ASSERT_TRUE(in_preprocessing.WaitForNotificationWithTimeout(kWait));

  absl::Status drained;
  std::thread drainer([&] { drained = engine_->Drain(absl::Seconds(30)); });
  // New work is refused once the drain has started; probes sent before that are admitted and
  // must then be finished by the drain like the others.
  std::vector<std::unique_ptr<Call>> admitted;
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    auto probe = std::make_unique<Call>(1.0f, Task::kSegmentation);
    probe->SubmitTo(*engine_);
    if (probe->Answered()) {
      refused = probe->Get().status().code() == absl::StatusCode::kUnavailable;
    } else {
      admitted.push_back(std::move(probe));
    }
    if (!refused) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(refused);
  release.Notify();
  classifier_->Open();
  drainer.join();
  EXPECT_TRUE(drained.ok()) << drained;
  EXPECT_TRUE(running.Get().ok());
  EXPECT_TRUE(queued.Get().ok());
  absl::StatusOr<InferenceResponse> prepared = preprocessing.Get();
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(std::get<ClassifyResult>(prepared->result).classes[0].class_id, 2);
  for (auto& probe : admitted) EXPECT_TRUE(probe->Get().ok());
}

TEST_F(RuntimeEngineTest, DrainGracePeriodEndsWithDeadlineExceeded) {
  Start(/*max_batch_size=*/1);
  classifier_->Close();
  Call running(0.0f);
  running.SubmitTo(*engine_);
  ASSERT_TRUE(classifier_->WaitForHeld(1, kWait));
  Call queued(0.0f);
  queued.SubmitTo(*engine_);
  absl::SleepFor(absl::Milliseconds(50));
  absl::Status drained;
  std::thread drainer([&] { drained = engine_->Drain(absl::Milliseconds(200)); });
  // The queued request is dropped when the grace period ends, while the running one still runs.
  EXPECT_EQ(queued.Get().status().code(), absl::StatusCode::kUnavailable);
  classifier_->Open();
  drainer.join();
  EXPECT_EQ(drained.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(running.Get().ok());
}

TEST_F(RuntimeEngineTest, InstancesRunBatchesConcurrently) {
  Start(/*max_batch_size=*/1, /*max_queue_size=*/8, /*instances=*/2);
  classifier_->Close();
  Call a(0.0f), b(1.0f);
  a.SubmitTo(*engine_);
  b.SubmitTo(*engine_);
  EXPECT_TRUE(classifier_->WaitForHeld(2, kWait));  // both instances are inside a forward pass
  classifier_->Open();
  EXPECT_TRUE(a.Get().ok());
  EXPECT_TRUE(b.Get().ok());
  EXPECT_EQ(engine_->GetModel("cls")->devices.size(), 2u);
}

TEST_F(RuntimeEngineTest, WarmupRunsBeforeTheEngineIsReturned) {
  Start(/*max_batch_size=*/4, /*max_queue_size=*/8, /*instances=*/1, /*worker_threads=*/2,
        /*warmup_iterations=*/2);
  // Classification warms up at batch 1 and at the maximum batch size, twice each.
  EXPECT_THAT(classifier_->batch_sizes(), ElementsAre(1, 4, 1, 4));
  EXPECT_THAT(detector_->batch_sizes(), ElementsAre(1, 1));
}

TEST(RuntimeEngineCreateTest, LoaderErrorsNameTheModel) {
  ServerConfig config;
  auto* model = config.add_models();
  model->set_name("broken");
  model->set_architecture("not_registered_with_the_fake_loader");
  ApplyConfigDefaults(&config);
  RuntimeBackend backend;
  backend.load_model = FakeLoader({});
  Metrics::Options metrics_options;
  metrics_options.port = -1;
  std::unique_ptr<Metrics> metrics = *Metrics::Create(metrics_options);
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      CreateRuntimeEngine(config, metrics.get(), std::move(backend));
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(engine.status().message(), HasSubstr("model \"broken\": unknown architecture"));
  EXPECT_EQ(CreateRuntimeEngine(config, metrics.get(), RuntimeBackend{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace iis::runtime
