// Intended send times of an open-loop load test.
//
// Constant arrivals are evenly spaced (1/rate apart). Poisson arrivals have independent,
// exponentially distributed gaps with mean 1/rate (coefficient of variation 1), drawn by inverse
// transform from a seeded std::mt19937_64, so a seed gives the same schedule on every platform.
// Not thread-safe: one scheduler thread owns a schedule.
#pragma once

#include <cstdint>
#include <random>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace iis::client {

enum class ArrivalProcess { kConstant, kPoisson };

// Parses "constant" or "poisson" (for option `flag`), INVALID_ARGUMENT otherwise.
absl::StatusOr<ArrivalProcess> ParseArrivalProcess(absl::string_view flag, absl::string_view text);
// Returns "constant" or "poisson".
absl::string_view ArrivalProcessName(ArrivalProcess process);

class ArrivalSchedule {
 public:
  // `rate_per_second` must be > 0.
  ArrivalSchedule(ArrivalProcess process, double rate_per_second, uint64_t seed);

  // Returns the intended send time of the next request as nanoseconds since the schedule's
  // start; the first call returns the first arrival (0 for constant arrivals).
  int64_t NextOffsetNs();

 private:
  ArrivalProcess process_;
  double rate_;
  std::mt19937_64 rng_;
  int64_t index_ = 0;    // constant: arrivals handed out so far
  double time_s_ = 0.0;  // poisson: running sum of the gaps
};

}  // namespace iis::client
