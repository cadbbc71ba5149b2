#include "client/loadgen/histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace iis::client {
namespace {

constexpr double kPercentiles[] = {0,  0.1, 1,  5,    10,   25,    50,     75,
                                   90, 95,  99, 99.5, 99.9, 99.99, 99.999, 100};

// The exact percentile of a sorted sample under the histogram's rank rule.
int64_t ExactPercentile(const std::vector<int64_t>& sorted, double p) {
  const auto n = static_cast<int64_t>(sorted.size());
  const int64_t rank =
      std::clamp<int64_t>(static_cast<int64_t>(std::ceil(p * n / 100.0 - 1e-9)), 1, n);
  return sorted[rank - 1];
}

void ExpectMatchesSample(const LatencyHistogram& histogram, std::vector<int64_t> samples,
                         const std::string& name) {
  std::sort(samples.begin(), samples.end());
  ASSERT_EQ(histogram.count(), static_cast<int64_t>(samples.size())) << name;
  EXPECT_EQ(histogram.min(), samples.front()) << name;
  EXPECT_EQ(histogram.max(), samples.back()) << name;
  long double sum = 0;
  for (int64_t v : samples) sum += v;
  EXPECT_NEAR(histogram.mean(), static_cast<double>(sum / samples.size()), 1e-6) << name;
  for (double p : kPercentiles) {
    const int64_t exact = ExactPercentile(samples, p);
    const int64_t estimate = histogram.ValueAtPercentile(p);
    // The stated guarantee is 0.1%; the construction gives 1/2048.
    EXPECT_LE(std::abs(estimate - exact), exact * LatencyHistogram::kMaxRelativeError)
        << name << " p" << p << ": exact " << exact << " histogram " << estimate;
    EXPECT_LE(std::abs(estimate - exact), exact * 0.001) << name << " p" << p;
  }
}

std::vector<int64_t> Uniform(int n, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> dist(1000, 100'000'000);  // 1 us .. 100 ms
  std::vector<int64_t> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<int64_t> Exponential(int n, std::mt19937_64& rng) {
  std::exponential_distribution<double> dist(1.0 / 2e6);  // mean 2 ms
  std::vector<int64_t> v(n);
  for (auto& x : v) x = 1000 + static_cast<int64_t>(dist(rng));
  return v;
}

std::vector<int64_t> Bimodal(int n, std::mt19937_64& rng) {
  // 90% fast answers around 1 ms, 10% slow ones around 50 ms (e.g. a cache miss).
  std::normal_distribution<double> fast(1e6, 5e4), slow(5e7, 2e6);
  std::bernoulli_distribution is_slow(0.1);
  std::vector<int64_t> v(n);
  for (auto& x : v) {
    x = std::max<int64_t>(1, static_cast<int64_t>(is_slow(rng) ? slow(rng) : fast(rng)));
  }
  return v;
}

LatencyHistogram Fill(const std::vector<int64_t>& samples) {
  LatencyHistogram h;
  for (int64_t v : samples) h.Record(v);
  return h;
}

TEST(LatencyHistogramTest, BinsTileTheRangeWithBoundedWidth) {
  const int bins = LatencyHistogram::bin_count();
  EXPECT_EQ(LatencyHistogram::BinIndex(0), 0);
  EXPECT_EQ(LatencyHistogram::BinIndex(LatencyHistogram::kMaxValueNs), bins - 1);
  EXPECT_LE(bins, 40000);  // constant memory
  for (int i = 0; i + 1 < bins; ++i) {
    ASSERT_EQ(LatencyHistogram::BinHigh(i) + 1, LatencyHistogram::BinLow(i + 1)) << "bin " << i;
    const int64_t width = LatencyHistogram::BinHigh(i) - LatencyHistogram::BinLow(i) + 1;
    ASSERT_LE(static_cast<double>(width), std::max(1.0, LatencyHistogram::BinLow(i) / 1024.0))
        << "bin " << i;
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    const int64_t v = static_cast<int64_t>(rng() % LatencyHistogram::kMaxValueNs);
    const int bin = LatencyHistogram::BinIndex(v);
    ASSERT_LE(LatencyHistogram::BinLow(bin), v);
    ASSERT_GE(LatencyHistogram::BinHigh(bin), v);
  }
}

TEST(LatencyHistogramTest, UniformDistribution) {
  std::mt19937_64 rng(1);
  const auto samples = Uniform(200000, rng);
  ExpectMatchesSample(Fill(samples), samples, "uniform");
}

TEST(LatencyHistogramTest, ExponentialDistribution) {
  std::mt19937_64 rng(2);
  const auto samples = Exponential(200000, rng);
  ExpectMatchesSample(Fill(samples), samples, "exponential");
}

TEST(LatencyHistogramTest, ConstantDistribution) {
  const std::vector<int64_t> samples(5000, 1'234'567);
  const LatencyHistogram h = Fill(samples);
  ExpectMatchesSample(h, samples, "constant");
  // Min and max are exact, so every percentile of a constant sample is exact.
  for (double p : kPercentiles) EXPECT_EQ(h.ValueAtPercentile(p), 1'234'567) << p;
}

TEST(LatencyHistogramTest, BimodalDistribution) {
  std::mt19937_64 rng(3);
  const auto samples = Bimodal(200000, rng);
  const LatencyHistogram h = Fill(samples);
  ExpectMatchesSample(h, samples, "bimodal");
  // The median sits in the fast mode, p95 in the slow one.
  EXPECT_LT(h.ValueAtPercentile(50), 2'000'000);
  EXPECT_GT(h.ValueAtPercentile(95), 40'000'000);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  std::vector<int64_t> samples;
  for (int64_t v = 0; v < 3000; ++v) samples.push_back(v);
  const LatencyHistogram h = Fill(samples);
  for (double p : {1.0, 10.0, 33.3, 50.0}) {
    EXPECT_EQ(h.ValueAtPercentile(p), ExactPercentile(samples, p)) << p;
  }
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(4);
  auto samples = Bimodal(40000, rng);
  const auto more = Exponential(40000, rng);
  samples.insert(samples.end(), more.begin(), more.end());
  // As if four threads had recorded interleaved parts.
  std::vector<LatencyHistogram> parts(4);
  for (size_t i = 0; i < samples.size(); ++i) parts[i % 4].Record(samples[i]);
  LatencyHistogram merged;
  for (const auto& part : parts) merged.Merge(part);
  const LatencyHistogram whole = Fill(samples);
  EXPECT_EQ(merged.count(), whole.count());
  EXPECT_EQ(merged.min(), whole.min());
  EXPECT_EQ(merged.max(), whole.max());
  EXPECT_DOUBLE_EQ(merged.mean(), whole.mean());
  for (double p : kPercentiles) {
    EXPECT_EQ(merged.ValueAtPercentile(p), whole.ValueAtPercentile(p)) << p;
  }
  ExpectMatchesSample(merged, samples, "merged");
}

TEST(LatencyHistogramTest, MergeWithEmptyKeepsMinAndMax) {
  LatencyHistogram a, empty;
  a.Record(5000);
  a.Record(9000);
  a.Merge(empty);
  EXPECT_EQ(a.count(), 2);
  empty.Merge(a);
  EXPECT_EQ(empty.min(), 5000);
  EXPECT_EQ(empty.max(), 9000);
}

TEST(LatencyHistogramTest, EmptyAndResetAndClamping) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.ValueAtPercentile(50), 0);
  EXPECT_EQ(h.mean(), 0.0);
  h.Record(-5);
  h.Record(LatencyHistogram::kMaxValueNs * 3);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), LatencyHistogram::kMaxValueNs);
  EXPECT_EQ(h.ValueAtPercentile(100), LatencyHistogram::kMaxValueNs);
  h.Reset();
  EXPECT_EQ(h.count(), 0);
  h.Record(42);
  EXPECT_EQ(h.min(), 42);
  EXPECT_EQ(h.ValueAtPercentile(50), 42);
}

}  // namespace
}  // namespace iis::client
