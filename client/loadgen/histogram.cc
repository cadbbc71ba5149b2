#include "client/loadgen/histogram.h"

#include <algorithm>
#include <cmath>

namespace iis::client {
namespace {

// 2^kSubBits bins in the linear range [0, 2048); 2^(kSubBits-1) bins per power of two above it.
constexpr int kSubBits = 11;
constexpr int64_t kLinearLimit = int64_t{1} << kSubBits;  // 2048
constexpr int kHalf = 1 << (kSubBits - 1);                // 1024

int HighestBit(uint64_t value) { return 63 - __builtin_clzll(value); }

}  // namespace

int LatencyHistogram::BinIndex(int64_t value_ns) {
  const int64_t v = std::clamp<int64_t>(value_ns, 0, kMaxValueNs);
  if (v < kLinearLimit) return static_cast<int>(v);
  // v in [1024 * 2^b, 2048 * 2^b) for b >= 1: the bin is v >> b in [1024, 2048), offset by 1024*b.
  const int b = HighestBit(static_cast<uint64_t>(v)) - (kSubBits - 1);
  return kHalf * b + static_cast<int>(v >> b);
}

int64_t LatencyHistogram::BinLow(int index) {
  if (index < kLinearLimit) return index;
  const int b = index / kHalf - 1;
  return static_cast<int64_t>(index - kHalf * b) << b;
}

int64_t LatencyHistogram::BinHigh(int index) {
  if (index < kLinearLimit) return index;
  const int b = index / kHalf - 1;
  return BinLow(index) + (int64_t{1} << b) - 1;
}

int LatencyHistogram::bin_count() { return BinIndex(kMaxValueNs) + 1; }

LatencyHistogram::LatencyHistogram() : bins_(bin_count(), 0) {}

void LatencyHistogram::Record(int64_t value_ns) {
  const int64_t v = std::clamp<int64_t>(value_ns, 0, kMaxValueNs);
  ++bins_[BinIndex(v)];
  if (count_ == 0) {
    min_ = max_ = v;
  } else {
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }
  ++count_;
  sum_ += v;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < bins_.size(); ++i) bins_[i] += other.bins_[i];
  if (count_ == 0) {
    min_ = other.min_;
    max_ = other.max_;
  } else {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
  count_ += other.count_;
  sum_ += other.sum_;
}

void LatencyHistogram::Reset() {
  std::fill(bins_.begin(), bins_.end(), 0);
  count_ = 0;
  min_ = max_ = 0;
  sum_ = 0;
}

double LatencyHistogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / count_);
}

int64_t LatencyHistogram::ValueAtPercentile(double percentile) const {
  if (count_ == 0) return 0;
  const double p = std::clamp(percentile, 0.0, 100.0);
  // The small epsilon keeps e.g. 99.9% of 1000 at rank 999 despite binary rounding.
  const int64_t rank = std::clamp<int64_t>(
      static_cast<int64_t>(std::ceil(p * static_cast<double>(count_) / 100.0 - 1e-9)), 1, count_);
  if (rank == 1) return min_;
  if (rank == count_) return max_;
  int64_t seen = 0;
  for (size_t i = 0; i < bins_.size(); ++i) {
    seen += bins_[i];
    if (seen >= rank) {
      const int index = static_cast<int>(i);
      const int64_t middle = BinLow(index) + (BinHigh(index) - BinLow(index)) / 2;
      return std::clamp(middle, min_, max_);
    }
  }
  return max_;
}

}  // namespace iis::client
