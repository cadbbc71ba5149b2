// Agreement with the official InternImage implementation.
//
// tests/fixtures/internimage/ holds weights, inputs and outputs that the official PyTorch code
// produced (tests/parity/make_internimage_fixtures.py, pure-PyTorch DCNv3 path, reduced sizes,
// one fixture per structural option of the official variants). Here the checkpoints are read by
// our reader and both our forward paths must reproduce the official logits and level outputs to
// 1e-4 relative error.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/testing/paths.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "models/backbone/internimage.h"
#include "models/cpu/internimage_cpu_plan.h"
#include "models/npy.h"
#include "models/weights.h"

namespace iis::models::backbone {
namespace {

std::string FixtureDir() { return testing_paths::SourceDir() + "/tests/fixtures/internimage/"; }

at::Tensor LoadArray(const std::string& path) {
  const NpyArray a = ReadNpy(path);
  EXPECT_EQ(a.dtype, "<f4") << path;
  at::Tensor t = at::empty(a.shape, at::kFloat);
  std::memcpy(t.data_ptr<float>(), a.data.data(), a.data.size());
  return t;
}

std::vector<int> IntList(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoi(item));
  return out;
}

// Reads <name>.config.txt ("key value" lines written by the fixture script).
std::pair<InternImageConfig, int64_t> ReadConfig(const std::string& name) {
  std::ifstream in(FixtureDir() + name + ".config.txt");
  std::map<std::string, std::string> kv;
  for (std::string key, value; in >> key >> value;) kv[key] = value;
  InternImageConfig c;
  c.channels = std::stoi(kv.at("channels"));
  c.depths = IntList(kv.at("depths"));
  c.groups = IntList(kv.at("groups"));
  c.offset_scale = std::stod(kv.at("offset_scale"));
  c.post_norm = kv.at("post_norm") == "True";
  c.layer_scale = kv.at("layer_scale") != "none";
  if (kv.at("dw_kernel_size") != "none") c.dw_kernel_size = std::stoi(kv.at("dw_kernel_size"));
  c.res_post_norm = kv.at("res_post_norm") == "True";
  c.center_feature_scale = kv.at("center_feature_scale") == "True";
  if (kv.at("level2_post_norm_block_ids") != "none") {
    c.level2_post_norm_block_ids = IntList(kv.at("level2_post_norm_block_ids"));
  }
  return {c, std::stoll(kv.at("num_classes"))};
}

double RelativeError(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / want.abs().max().item<double>();
}

class OfficialParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OfficialParityTest, LogitsAndLevelsEqualTheOfficialCode) {
  const std::string name = GetParam();
  const auto [config, num_classes] = ReadConfig(name);
  auto model = std::make_shared<InternImage>(config, num_classes);
  const WeightsOrigin origin = LoadWeights(*model, FixtureDir() + name + ".pth");
  EXPECT_TRUE(origin.real);
  const cpu::InternImageCpuPlan plan(model);
  at::InferenceMode guard;
  const at::Tensor x = LoadArray(FixtureDir() + "input.npy");
  const at::Tensor want = LoadArray(FixtureDir() + name + ".logits.npy");

  const double ref_err = RelativeError(model->ForwardLogits(x), want);
  const double plan_err = RelativeError(plan.ForwardLogits(x), want);
  EXPECT_LT(ref_err, 1e-4) << "reference path";
  EXPECT_LT(plan_err, 1e-4) << "optimised CPU path";
  const auto levels = plan.ForwardLevels(x);
  for (int i = 0; i < 4; ++i) {
    const at::Tensor lw = LoadArray(FixtureDir() + name + ".level" + std::to_string(i) + ".npy");
    EXPECT_LT(RelativeError(levels[i], lw), 1e-4) << "level " << i;
  }
  std::printf("[ parity ] %-14s logits rel. error: reference %.2e, optimised %.2e\n", name.c_str(),
              ref_err, plan_err);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, OfficialParityTest,
                         ::testing::Values("t", "t_layer_scale", "s", "l", "h", "g"));

// The official classifiers pool globally and run at any input size: at 1 x 1, at an odd 7 x 9
// and at a non-square 40 x 72 both of our paths equal the official logits.
class AnySizeParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(AnySizeParityTest, LogitsEqualTheOfficialCodeAtOtherInputSizes) {
  const std::string name = GetParam();
  const auto [config, num_classes] = ReadConfig(name);
  auto model = std::make_shared<InternImage>(config, num_classes);
  LoadWeights(*model, FixtureDir() + name + ".pth");
  const cpu::InternImageCpuPlan plan(model);
  at::InferenceMode guard;
  for (const char* size : {"1x1", "7x9", "40x72"}) {
    const at::Tensor x = LoadArray(FixtureDir() + "input." + size + ".npy");
    const at::Tensor want = LoadArray(FixtureDir() + name + ".logits." + size + ".npy");
    ASSERT_EQ(want.size(0), x.size(0));
    EXPECT_LT(RelativeError(model->ForwardLogits(x), want), 1e-4) << size << " reference path";
    EXPECT_LT(RelativeError(plan.ForwardLogits(x), want), 1e-4) << size << " optimised CPU path";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AnySizeParityTest, ::testing::Values("t", "h", "g"));

TEST(OfficialParityTest, ClipProjectorHeadEqualsTheOfficialCode) {
  AttentionPooling head(64, 4, 48);
  LoadWeights(head, FixtureDir() + "clip_head.pth");
  at::InferenceMode guard;
  const at::Tensor got = head.forward(LoadArray(FixtureDir() + "clip_head.input.npy"));
  EXPECT_LT(RelativeError(got, LoadArray(FixtureDir() + "clip_head.output.npy")), 1e-5);
}

}  // namespace
}  // namespace iis::models::backbone
