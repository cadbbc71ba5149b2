// End-to-end tests of build/bin/internimage-predict (the offline runner), driven exactly as
// external checks drive it.
#include <gtest/gtest.h>

#include "tests/testing/paths.h"

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "models/npy.h"

namespace iis {
namespace {

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout + stderr
};

RunResult Execute(const std::string& cmd) {
  RunResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  while (fgets(buf.data(), buf.size(), p) != nullptr) r.output += buf.data();
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string Predict() { return testing_paths::BinaryDir() + "/bin/internimage-predict"; }

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/iis_predict_" + name;
}

void WriteInput(const std::string& path, int n, float seed, int height = 224, int width = 224) {
  models::NpyArray a;
  a.dtype = "<f4";
  a.shape = {n, 3, height, width};
  std::vector<float> v(static_cast<size_t>(n) * 3 * height * width);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(seed + 0.001f * static_cast<float>(i));
  a.data.resize(v.size() * 4);
  std::memcpy(a.data.data(), v.data(), a.data.size());
  models::WriteNpy(path, a);
}

std::vector<float> ReadLogits(const std::string& path, std::vector<int64_t>* shape) {
  const models::NpyArray a = models::ReadNpy(path);
  *shape = a.shape;
  std::vector<float> v(a.data.size() / 4);
  std::memcpy(v.data(), a.data.data(), a.data.size());
  return v;
}

bool MakeCheckpoint(const std::string& out, const std::string& extra) {
  const std::string cmd = "/usr/bin/python3 " + testing_paths::SourceDir() +
                          "/tests/scripts/make_official_layout_checkpoint.py " +
                          testing_paths::SourceDir() + "/tests/fixtures/keys/internimage_t.tsv " +
                          out + " " + extra;
  return Execute(cmd).exit_code == 0;
}

// The official classifiers pool globally: any input size runs (the parity with the official code
// at other sizes is internimage_parity_test's AnySizeParityTest).
TEST(PredictCliTest, ClassifiersTakeInputsOfAnySize) {
  const std::string in = TempPath("odd.npy"), out = TempPath("odd_out.npy");
  WriteInput(in, 2, 0.25f, 37, 61);
  const RunResult r =
      Execute(Predict() + " --model internimage_t_1k_224 --input " + in + " --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<int64_t> shape;
  const std::vector<float> logits = ReadLogits(out, &shape);
  EXPECT_EQ(shape, (std::vector<int64_t>{2, 1000}));
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  WriteInput(in, 1, 0.25f, 0, 5);
  const RunResult empty =
      Execute(Predict() + " --model internimage_t_1k_224 --input " + in + " --output " + out);
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_NE(empty.output.find("H, W >= 1"), std::string::npos) << empty.output;
}

TEST(PredictCliTest, NpyInOutWithRandomWeightsSaysSoAndIsDeterministic) {
  const std::string in = TempPath("in.npy"), out1 = TempPath("out1.npy"),
                    out2 = TempPath("out2.npy");
  WriteInput(in, 2, 0.5f);
  const RunResult a =
      Execute(Predict() + " --model internimage_t_1k_224 --input " + in + " --output " + out1);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_NE(a.output.find("random"), std::string::npos) << a.output;
  const RunResult b =
      Execute(Predict() + " --model internimage_t_1k_224 --input " + in + " --output " + out2);
  ASSERT_EQ(b.exit_code, 0) << b.output;
  std::vector<int64_t> s1, s2;
  const auto l1 = ReadLogits(out1, &s1), l2 = ReadLogits(out2, &s2);
  EXPECT_EQ(s1, (std::vector<int64_t>{2, 1000}));
  EXPECT_EQ(l1, l2);
  for (float v : l1) ASSERT_TRUE(std::isfinite(v));
  // The two images give different logits.
  EXPECT_NE(std::vector<float>(l1.begin(), l1.begin() + 1000),
            std::vector<float>(l1.begin() + 1000, l1.end()));
}

TEST(PredictCliTest, OfficialLayoutCheckpointLoadsStrictly) {
  const std::string ckpt = TempPath("official_t.pth"), in = TempPath("in1.npy");
  ASSERT_TRUE(MakeCheckpoint(ckpt, "--prefix module.")) << "needs /usr/bin/python3 with torch";
  WriteInput(in, 1, 1.5f);
  const std::string out_real = TempPath("real.npy"), out_ref = TempPath("ref.npy"),
                    out_rand = TempPath("rand.npy");
  const RunResult r = Execute(Predict() + " --model internimage_t_1k_224 --weights " + ckpt +
                              " --input " + in + " --output " + out_real);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("random"), std::string::npos) << r.output;
  // The plain ATen reference path gives the same logits from the same file.
  ASSERT_EQ(Execute(Predict() + " --model internimage_t_1k_224 --reference --weights " + ckpt +
                    " --input " + in + " --output " + out_ref)
                .exit_code,
            0);
  ASSERT_EQ(
      Execute(Predict() + " --model internimage_t_1k_224 --input " + in + " --output " + out_rand)
          .exit_code,
      0);
  std::vector<int64_t> shape;
  const auto real = ReadLogits(out_real, &shape), ref = ReadLogits(out_ref, &shape),
             rand = ReadLogits(out_rand, &shape);
  float max_abs = 0, max_diff = 0;
  for (size_t i = 0; i < real.size(); ++i) {
    max_abs = std::max(max_abs, std::fabs(ref[i]));
    max_diff = std::max(max_diff, std::fabs(real[i] - ref[i]));
  }
  EXPECT_LT(max_diff, 1e-4f * max_abs);
  EXPECT_NE(real, rand);
}

TEST(PredictCliTest, MissingKeyIsReportedByName) {
  const std::string ckpt = TempPath("missing_t.pth"), in = TempPath("in2.npy");
  ASSERT_TRUE(MakeCheckpoint(ckpt, "--drop levels.2.blocks.7.dcn.offset.bias --dtype float16"));
  WriteInput(in, 1, 2.5f);
  const RunResult r = Execute(Predict() + " --model internimage_t_1k_224 --weights " + ckpt +
                              " --input " + in + " --output " + TempPath("never.npy"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("levels.2.blocks.7.dcn.offset.bias"), std::string::npos) << r.output;
}

TEST(PredictCliTest, ImagesPrintTopFiveAndUsageErrorsExitTwo) {
  const RunResult r = Execute(Predict() +
                              " --model internimage_t_1k_224 --image "
                              "/usr/lib/python3/dist-packages/skimage/data/chelsea.png");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("chelsea.png"), std::string::npos);
  EXPECT_NE(r.output.find("  5. "), std::string::npos) << r.output;
  EXPECT_EQ(Execute(Predict() + " --model nope --image x.png").exit_code, 2);
  EXPECT_EQ(Execute(Predict() + " --image x.png").exit_code, 2);
  EXPECT_EQ(Execute(Predict() + " --model internimage_t_1k_224 --input a.npy").exit_code, 2);
  const RunResult bad =
      Execute(Predict() + " --model internimage_t_1k_224 --image /nonexistent.jpg");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("/nonexistent.jpg"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace iis
