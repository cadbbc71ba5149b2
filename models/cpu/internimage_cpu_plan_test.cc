#include "models/cpu/internimage_cpu_plan.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "ops/cpu/isa.h"

namespace iis::models::cpu {
namespace {

struct PlanCase {
  std::string name;
  models::backbone::InternImageConfig config;
  int64_t num_classes;
};

// Reduced depth and width, every structural option of the official variants.
std::vector<PlanCase> Cases() {
  std::vector<PlanCase> cases;
  models::backbone::InternImageConfig t = models::backbone::OfficialClassificationConfig("t");
  t.channels = 32, t.depths = {1, 1, 2, 1}, t.groups = {2, 4, 8, 16};
  cases.push_back({"T_prenorm_classifier", t, 17});
  models::backbone::InternImageConfig dense = models::backbone::OfficialDenseConfig("t");
  dense.channels = 32, dense.depths = {2, 1, 1, 1}, dense.groups = {2, 4, 8, 16};
  cases.push_back({"T_dense_layer_scale", dense, 0});
  models::backbone::InternImageConfig s = models::backbone::OfficialClassificationConfig("s");
  s.channels = 40, s.depths = {1, 2, 1, 1}, s.groups = {5, 10, 20, 40};  // D = 8
  cases.push_back({"S_postnorm_layer_scale", s, 11});
  models::backbone::InternImageConfig l = models::backbone::OfficialClassificationConfig("l");
  l.channels = 48, l.depths = {1, 1, 1, 1}, l.groups = {3, 6, 12, 24};
  cases.push_back({"L_offset_scale_2", l, 5});
  models::backbone::InternImageConfig h = models::backbone::OfficialClassificationConfig("h");
  h.channels = 32, h.depths = {1, 1, 3, 1}, h.groups = {1, 2, 4, 8},
  h.level2_post_norm_block_ids = {0, 2};
  cases.push_back({"H_res_post_norm_cfs_clip_head", h, 7});
  models::backbone::InternImageConfig g = models::backbone::OfficialClassificationConfig("g");
  g.channels = 32, g.depths = {1, 1, 2, 1}, g.groups = {2, 4, 8, 16},
  g.level2_post_norm_block_ids = {1};
  cases.push_back({"G_postnorm_cfs_clip_head", g, 7});
  return cases;
}

double RelativeError(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(1e-6, want.abs().max().item<double>());
}

class CpuPlanTest : public ::testing::TestWithParam<std::tuple<int, CpuLinear::Backend>> {};

TEST_P(CpuPlanTest, EqualsTheReferenceForward) {
  const auto [index, backend] = GetParam();
  if (backend == CpuLinear::Backend::kOneDnn && !CpuLinear::HasOneDnn())
    GTEST_SKIP() << "no oneDNN";
  const PlanCase c = Cases()[index];
  SCOPED_TRACE(c.name);
  auto model = std::make_shared<models::backbone::InternImage>(c.config, c.num_classes);
  InitRandomWeights(*model, 42 + index);
  const InternImageCpuPlan plan(model, backend);
  at::InferenceMode guard;
  const at::Tensor x = at::randn({2, 3, 64, 96}, at::TensorOptions().dtype(at::kFloat));
  const auto want = model->ForwardLevels(x);
  const auto got = plan.ForwardLevels(x);
  ASSERT_EQ(got.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(got[i].sizes(), want[i].sizes());
    EXPECT_LT(RelativeError(got[i], want[i]), 1e-4) << "level " << i;
  }
  if (c.num_classes > 0) {
    EXPECT_LT(RelativeError(plan.ForwardLogits(x), model->ForwardLogits(x)), 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(AllVariants, CpuPlanTest,
                         ::testing::Combine(::testing::Range(0, 6),
                                            ::testing::Values(CpuLinear::Backend::kOneDnn,
                                                              CpuLinear::Backend::kAten)));

TEST(CpuPlanIsaTest, EveryCompiledIsaGivesTheSameLogits) {
  models::backbone::InternImageConfig c = models::backbone::OfficialClassificationConfig("t");
  c.channels = 32, c.depths = {1, 1, 1, 1}, c.groups = {2, 4, 8, 16};
  auto model = std::make_shared<models::backbone::InternImage>(c, 9);
  InitRandomWeights(*model, 3);
  const InternImageCpuPlan plan(model);
  at::InferenceMode guard;
  const at::Tensor x = at::randn({1, 3, 64, 64});
  const at::Tensor want = model->ForwardLogits(x);
  for (auto isa : {ops::cpu::Isa::kBaseline, ops::cpu::Isa::kAvx2, ops::cpu::Isa::kAvx512}) {
    ops::cpu::ScopedIsaOverride cap(isa);
    EXPECT_LT(RelativeError(plan.ForwardLogits(x), want), 1e-4)
        << ops::cpu::IsaName(ops::cpu::BestIsa());
  }
}

TEST(CpuPlanTest, RejectsNonFloatModelsAndInputs) {
  models::backbone::InternImageConfig c = models::backbone::OfficialClassificationConfig("t");
  c.channels = 32, c.depths = {1, 1, 1, 1}, c.groups = {2, 4, 8, 16};
  auto model = std::make_shared<models::backbone::InternImage>(c, 3);
  InitRandomWeights(*model, 1);
  const InternImageCpuPlan plan(model);
  EXPECT_THROW(plan.ForwardLevels(at::randn({1, 4, 64, 64})), c10::Error);
  EXPECT_THROW(plan.ForwardLevels(at::randn({1, 3, 64, 64}).to(at::kDouble)), c10::Error);
  auto half = std::make_shared<models::backbone::InternImage>(c, 3);
  half->to(at::kDouble);
  EXPECT_THROW(InternImageCpuPlan{half}, c10::Error);
}

}  // namespace
}  // namespace iis::models::cpu
