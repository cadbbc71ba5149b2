#include "ops/cpu/isa.h"

#include <gtest/gtest.h>

namespace iis::ops::cpu {
namespace {

TEST(IsaTest, OverrideLowersAndRestores) {
  const Isa best = BestIsa();
  {
    ScopedIsaOverride cap(Isa::kBaseline);
    EXPECT_EQ(BestIsa(), Isa::kBaseline);
  }
  EXPECT_EQ(BestIsa(), best);
}

TEST(IsaTest, OverrideNeverRaisesAboveTheCpu) {
  const Isa best = BestIsa();
  ScopedIsaOverride cap(Isa::kAvx512);
  EXPECT_EQ(BestIsa(), best);
}

TEST(IsaTest, NamesAreStable) {
  EXPECT_STREQ(IsaName(Isa::kAvx512), "avx512");
  EXPECT_STREQ(IsaName(Isa::kAvx2), "avx2");
  EXPECT_STREQ(IsaName(Isa::kBaseline), "baseline");
}

}  // namespace
}  // namespace iis::ops::cpu
