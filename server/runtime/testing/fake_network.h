// Fake networks for tests of the runtime core (no LibTorch): deterministic answers computed from
// the input image, a gate that holds forward passes, and injected failures.
//
// Every answer depends on the first value of the image's first channel, v = image.chw[0]:
//   classification: probability 1 for class int(v) mod num_classes, 0 for the others;
//   detection:      one object of class int(v) mod num_classes, score 0.9, box = the whole image;
//   segmentation:   every pixel of class int(v) mod num_classes.
// An image whose v is kPoison makes the forward pass that contains it throw, as a model does on an
// input it cannot run.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/runtime/network.h"

namespace iis::runtime::testing_fakes {

// The first channel value that makes a forward pass throw.
inline constexpr float kPoison = -1000.0f;

// State shared by the instances of one fake model: the gate, the failure switch and a record of
// the batches that ran. Thread-safe.
class FakeNetworkControl {
 public:
  // Holds every forward pass that starts from now on until Open().
  void Close();
  void Open();
  // Makes every forward pass throw std::runtime_error(message) while set; "" clears it.
  void FailWith(const std::string& message);

  // Waits until `count` forward passes are held at the closed gate. Returns false after `timeout`.
  bool WaitForHeld(int count, absl::Duration timeout);
  // Returns the sizes of the batches that ran (or were tried), in order.
  std::vector<int> batch_sizes() const;
  // Returns how many images were run in total (a retried image counts once per try).
  int64_t images_run() const;

  // Called by FakeNetwork::Run: records the batch, waits at the gate, returns the failure message.
  std::string Enter(int batch_size);

 private:
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  std::string failure_ ABSL_GUARDED_BY(mu_);
  std::vector<int> batch_sizes_ ABSL_GUARDED_BY(mu_);
  int64_t images_run_ ABSL_GUARDED_BY(mu_) = 0;
};

class FakeNetwork final : public Network {
 public:
  FakeNetwork(Task task, int num_classes, std::shared_ptr<FakeNetworkControl> control);
  std::vector<NetworkOutput> Run(const std::vector<NetworkInput>& batch) override;
  std::string device() const override { return "cpu"; }

 private:
  const Task task_;
  const int num_classes_;
  const std::shared_ptr<FakeNetworkControl> control_;
};

// What one fake model of a FakeLoader is.
struct FakeModelSpec {
  Task task = Task::kClassification;
  int num_classes = 3;
  // The control its instances share (one is made when null).
  std::shared_ptr<FakeNetworkControl> control;
  // Classification: the square input size its preprocessing resizes to.
  int input_size = 8;
};

// Returns a ModelLoader that builds, for a ModelConfig whose `architecture` is a key of `specs`,
// a model of that spec with config.instances() FakeNetworks (class names "c0", "c1", ...), and
// answers INVALID_ARGUMENT for other architectures.
ModelLoader FakeLoader(std::vector<std::pair<std::string, FakeModelSpec>> specs);

}  // namespace iis::runtime::testing_fakes
