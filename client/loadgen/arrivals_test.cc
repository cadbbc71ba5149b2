#include "client/loadgen/arrivals.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace iis::client {
namespace {

constexpr int kArrivals = 200000;
constexpr double kRate = 1000.0;  // per second

std::vector<double> GapsSeconds(ArrivalSchedule& schedule, int n) {
  std::vector<double> gaps;
  int64_t previous = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t t = schedule.NextOffsetNs();
    gaps.push_back((t - previous) * 1e-9);
    previous = t;
  }
  return gaps;
}

// Kolmogorov-Smirnov distance between the sample and the Exp(rate) distribution.
double KsDistanceToExponential(std::vector<double> sample, double rate) {
  std::sort(sample.begin(), sample.end());
  const double n = static_cast<double>(sample.size());
  double d = 0;
  for (size_t i = 0; i < sample.size(); ++i) {
    const double cdf = 1.0 - std::exp(-rate * sample[i]);
    d = std::max({d, cdf - i / n, (i + 1) / n - cdf});
  }
  return d;
}

TEST(ArrivalScheduleTest, PoissonHasTheRightMeanRateAndSpread) {
  ArrivalSchedule schedule(ArrivalProcess::kPoisson, kRate, /*seed=*/42);
  const std::vector<double> gaps = GapsSeconds(schedule, kArrivals);
  double sum = 0, sum_sq = 0;
  for (double g : gaps) {
    sum += g;
    sum_sq += g * g;
  }
  const double mean = sum / kArrivals;
  const double stddev = std::sqrt(sum_sq / kArrivals - mean * mean);
  // Standard error of the mean is 1/sqrt(n) = 0.22% of it; allow 1%.
  EXPECT_NEAR(mean, 1.0 / kRate, 0.01 / kRate);
  EXPECT_NEAR(stddev / mean, 1.0, 0.02) << "coefficient of variation";
}

TEST(ArrivalScheduleTest, PoissonGapsAreExponential) {
  ArrivalSchedule schedule(ArrivalProcess::kPoisson, kRate, /*seed=*/7);
  const double d = KsDistanceToExponential(GapsSeconds(schedule, kArrivals), kRate);
  // The 5% critical value of the KS statistic is 1.36 / sqrt(n).
  EXPECT_LT(d, 1.36 / std::sqrt(static_cast<double>(kArrivals)));
}

TEST(ArrivalScheduleTest, KsCheckRejectsConstantArrivals) {
  // The check above can fail: evenly spaced arrivals are far from exponential.
  ArrivalSchedule schedule(ArrivalProcess::kConstant, kRate, /*seed=*/7);
  const double d = KsDistanceToExponential(GapsSeconds(schedule, 10000), kRate);
  EXPECT_GT(d, 0.3);
}

TEST(ArrivalScheduleTest, PoissonCountsPerWindowHaveVarianceEqualToMean) {
  // 200 windows of 1 s at 100/s: counts are Poisson(100), so variance / mean is about 1.
  ArrivalSchedule schedule(ArrivalProcess::kPoisson, 100.0, /*seed=*/3);
  std::vector<int> counts(200, 0);
  for (;;) {
    const int64_t t = schedule.NextOffsetNs();
    const int64_t window = t / 1'000'000'000;
    if (window >= static_cast<int64_t>(counts.size())) break;
    ++counts[window];
  }
  double mean = 0, var = 0;
  for (int c : counts) mean += c;
  mean /= counts.size();
  for (int c : counts) var += (c - mean) * (c - mean);
  var /= counts.size() - 1;
  EXPECT_NEAR(mean, 100.0, 3.0);
  EXPECT_NEAR(var / mean, 1.0, 0.25) << "index of dispersion";
}

TEST(ArrivalScheduleTest, SameSeedSameScheduleOtherSeedOtherSchedule) {
  ArrivalSchedule a(ArrivalProcess::kPoisson, kRate, 11), b(ArrivalProcess::kPoisson, kRate, 11),
      c(ArrivalProcess::kPoisson, kRate, 12);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    const int64_t ta = a.NextOffsetNs();
    ASSERT_EQ(ta, b.NextOffsetNs());
    differs |= ta != c.NextOffsetNs();
  }
  EXPECT_TRUE(differs);
}

TEST(ArrivalScheduleTest, ConstantArrivalsAreEvenlySpacedWithoutDrift) {
  ArrivalSchedule schedule(ArrivalProcess::kConstant, 3.0, /*seed=*/1);
  EXPECT_EQ(schedule.NextOffsetNs(), 0);
  int64_t previous = 0;
  for (int i = 1; i < 300000; ++i) {
    const int64_t t = schedule.NextOffsetNs();
    ASSERT_NEAR(t - previous, 333'333'333, 1);
    previous = t;
  }
  // Arrival 299,999 is exactly 99,999.667 s in: no accumulated rounding.
  EXPECT_EQ(previous, std::llround(299999 * 1e9 / 3.0));
}

TEST(ArrivalScheduleTest, ParsesProcessNames) {
  EXPECT_EQ(*ParseArrivalProcess("--arrivals", "poisson"), ArrivalProcess::kPoisson);
  EXPECT_EQ(*ParseArrivalProcess("--arrivals", "constant"), ArrivalProcess::kConstant);
  const auto bad = ParseArrivalProcess("--arrivals", "bursty");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--arrivals"), std::string::npos);
  EXPECT_NE(bad.status().message().find("bursty"), std::string::npos);
  EXPECT_EQ(ArrivalProcessName(ArrivalProcess::kPoisson), "poisson");
}

}  // namespace
}  // namespace iis::client
