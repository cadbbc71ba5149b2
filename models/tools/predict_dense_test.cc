// internimage-predict's detection and segmentation modes, run as a process: the files it writes
// hold exactly what the library computes, and bad usage fails with a clear message.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "models/dense_batch.h"
#include "models/detection/mask_rcnn.h"
#include "models/npy.h"
#include "models/segmentation/upernet.h"
#include "models/weights.h"
#include "tests/testing/paths.h"

namespace iis::models::tools {
namespace {

namespace fs = std::filesystem;

struct Result {
  int status;
  std::string output;  // stdout and stderr
};

class PredictDenseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    predict_ = testing_paths::BinaryDir() + "/bin/internimage-predict";
    if (!fs::exists(predict_)) GTEST_SKIP() << predict_ << " not built";
    dir_ =
        fs::temp_directory_path() /
        ("predict_dense_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Runs the binary single-threaded, like this process (float sums depend on the thread count).
  Result Run(const std::string& args) const {
    at::set_num_threads(1);
    const fs::path log = dir_ / "log.txt";
    const std::string cmd = predict_ + " --threads 1 " + args + " > " + log.string() + " 2>&1";
    const int raw = std::system(cmd.c_str());
    std::ifstream in(log);
    return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1,
            {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()}};
  }

  // Writes `t` (float32) as <name>.npy in the scratch folder and returns the path.
  std::string Save(const std::string& name, const at::Tensor& t) const {
    NpyArray a;
    a.dtype = "<f4";
    a.shape = t.sizes().vec();
    a.data.resize(t.numel() * sizeof(float));
    std::memcpy(a.data.data(), t.contiguous().data_ptr<float>(), a.data.size());
    const std::string path = (dir_ / (name + ".npy")).string();
    WriteNpy(path, a);
    return path;
  }

  static at::Tensor Load(const fs::path& path) {
    const NpyArray a = ReadNpy(path.string());
    EXPECT_EQ(a.dtype, "<f4");
    at::Tensor t = at::empty(a.shape, at::kFloat);
    std::memcpy(t.data_ptr<float>(), a.data.data(), a.data.size());
    return t;
  }

  std::string predict_;
  fs::path dir_;
};

TEST_F(PredictDenseTest, SegmentationLogitsAreTheModelsOwn) {
  at::manual_seed(1);
  const at::Tensor x = at::randn({1, 3, 64, 96});
  const Result r = Run("--model upernet_internimage_t_512_160k_ade20k --input " + Save("x", x) +
                       " --output-dir " + dir_.string() + " --seed 3");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("WARNING: no --weights given"), std::string::npos) << r.output;
  const at::Tensor written = Load(dir_ / "logits.npy");
  ASSERT_EQ(written.sizes(), (at::IntArrayRef{1, 150, 64, 96}));
  segmentation::UperNet model(*FindArchitecture("upernet_internimage_t_512_160k_ade20k"));
  RandomWeights(model.network(), 3);
  model.Prepare(RunOptions{});
  segmentation::SegmentationOptions options;
  options.return_logits = true;
  const auto expected = model.Segment(x, {IdentityMeta(64, 96)}, options);
  EXPECT_TRUE(at::equal(written[0], expected[0].logits));
}

TEST_F(PredictDenseTest, DetectionsAndMasksAreTheModelsOwnPaddedToOneHundredRows) {
  at::manual_seed(2);
  const at::Tensor x = at::randn({2, 3, 64, 64});
  const Result r = Run("--model mask_rcnn_internimage_t_fpn_1x_coco --input " + Save("x", x) +
                       " --output-dir " + dir_.string());
  ASSERT_EQ(r.status, 0) << r.output;
  const at::Tensor dets = Load(dir_ / "dets.npy");
  ASSERT_EQ(dets.sizes(), (at::IntArrayRef{2, 100, 6}));
  detection::MaskRcnn model(*FindArchitecture("mask_rcnn_internimage_t_fpn_1x_coco"));
  RandomWeights(model.network(), 0);
  model.Prepare(RunOptions{});
  const at::Tensor masks = Load(dir_ / "mask_probs.npy");
  ASSERT_EQ(masks.sizes(), (at::IntArrayRef{2, 100, 28, 28}));
  const auto expected = model.Detect(x, {IdentityMeta(64, 64), IdentityMeta(64, 64)});
  for (int64_t i = 0; i < 2; ++i) {
    const int64_t k = expected[i].scores.size(0);
    EXPECT_TRUE(at::equal(dets[i].slice(0, 0, k).slice(1, 0, 4), expected[i].boxes));
    EXPECT_TRUE(at::equal(dets[i].slice(0, 0, k).select(1, 4), expected[i].scores));
    EXPECT_TRUE(at::equal(dets[i].slice(0, 0, k).select(1, 5), expected[i].labels.to(at::kFloat)));
    EXPECT_TRUE((dets[i].slice(0, k) == -1).all().item<bool>());
    EXPECT_TRUE(at::equal(masks[i].slice(0, 0, k), expected[i].mask_probs));
    EXPECT_TRUE((masks[i].slice(0, k) == 0).all().item<bool>());
  }
}

TEST_F(PredictDenseTest, BadUsageIsReported) {
  const std::string model = " --model upernet_internimage_t_512_160k_ade20k";
  Result r = Run(model + " --input " + Save("x", at::zeros({1, 3, 50, 64})) + " --output-dir " +
                 dir_.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("H and W positive multiples of 32, got 1 x 3 x 50 x 64"),
            std::string::npos)
      << r.output;
  r = Run(model + " --input " + (dir_ / "x.npy").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--input needs --output-dir"), std::string::npos) << r.output;
  r = Run(" --model mask_rcnn_internimage_t_fpn_1x_coco --input " + (dir_ / "x.npy").string() +
          " --output-dir " + dir_.string() + " --score-threshold 0.01");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--score-threshold: expected a number in [0.05, 1], got '0.01'"),
            std::string::npos)
      << r.output;
  r = Run(model + " --image " + (dir_ / "missing.png").string() + " --output-dir " + dir_.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("missing.png' does not exist"), std::string::npos) << r.output;
  r = Run(model + " --threads abc --image x.png");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--threads: expected an integer in [0, 1024], got 'abc'"),
            std::string::npos)
      << r.output;
}

// Without --output-dir, --image prints what a person wants to read: the best detections with
// class, score and box, or the classes of the label map with their shares.
TEST_F(PredictDenseTest, ImagesWithoutAnOutputFolderPrintASummary) {
  const std::string photo = testing_paths::SkimagePhoto("coffee.png");
  Result r = Run(" --model mask_rcnn_internimage_t_fpn_1x_coco --image " + photo);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("coffee.png: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" detections"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("box ("), std::string::npos) << r.output;  // random weights find some
  for (const auto& entry : fs::directory_iterator(dir_)) {           // nothing written but the log
    EXPECT_EQ(entry.path().filename(), "log.txt");
  }

  r = Run(" --model upernet_internimage_t_512_160k_ade20k --image " + photo);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("coffee.png: 600 x 400 label map"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("% "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(class "), std::string::npos) << r.output;
}

}  // namespace
}  // namespace iis::models::tools
