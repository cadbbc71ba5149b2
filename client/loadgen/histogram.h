// A log-linear ("HDR-style") latency histogram: constant memory, bounded relative error,
// mergeable.
//
// Values are integer nanoseconds in [0, 1 h]. Below 2,048 ns every nanosecond has its own bin;
// above, each power-of-two range [2^k, 2^(k+1)) is split into 1,024 equal bins, so a bin is never
// wider than 1/1024 of the values it holds. Percentiles report the middle of their bin, which is
// within kMaxRelativeError (1/2048, about 0.05%) of the exact sample percentile. Values above
// the range are counted in the top bin (and in max()). Min, max and mean are exact.
//
// Memory: 33,792 64-bit counters (264 KiB). Recording is O(1); a percentile query walks the bins.
// Not thread-safe: give each thread its own histogram and Merge() them, or lock around it.
#pragma once

#include <cstdint>
#include <vector>

namespace iis::client {

class LatencyHistogram {
 public:
  static constexpr int64_t kMaxValueNs = int64_t{3600} * 1000 * 1000 * 1000;  // 1 hour
  static constexpr double kMaxRelativeError = 1.0 / 2048;

  LatencyHistogram();

  // Records one value in nanoseconds (negative values count as 0, values over 1 h as 1 h).
  void Record(int64_t value_ns);
  // Adds every value recorded in `other` to this histogram.
  void Merge(const LatencyHistogram& other);
  // Forgets every value.
  void Reset();

  int64_t count() const { return count_; }
  // Exact smallest / largest recorded value (0 when empty).
  int64_t min() const { return count_ == 0 ? 0 : min_; }
  int64_t max() const { return count_ == 0 ? 0 : max_; }
  // Exact mean of the recorded values (0 when empty).
  double mean() const;

  // Returns the value at `percentile` (0..100): the recorded value of rank
  // ceil(percentile / 100 * count) (rank 1 for percentile 0), within kMaxRelativeError.
  // Returns 0 for an empty histogram.
  int64_t ValueAtPercentile(double percentile) const;

  // Bin geometry, exposed for tests: the bin of a value and the value range [low, high] of a bin.
  static int BinIndex(int64_t value_ns);
  static int64_t BinLow(int index);
  static int64_t BinHigh(int index);
  static int bin_count();

 private:
  std::vector<int64_t> bins_;
  int64_t count_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  // Sum in long double: 1 h x 1e9 samples exceeds what int64 nanoseconds can hold.
  long double sum_ = 0;
};

}  // namespace iis::client
