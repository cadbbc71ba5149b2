#include "client/loadgen/arrivals.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace iis::client {

absl::StatusOr<ArrivalProcess> ParseArrivalProcess(absl::string_view flag, absl::string_view text) {
  if (text == "constant") return ArrivalProcess::kConstant;
  if (text == "poisson") return ArrivalProcess::kPoisson;
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": expected 'constant' or 'poisson', got '", text, "'"));
}

absl::string_view ArrivalProcessName(ArrivalProcess process) {
  return process == ArrivalProcess::kConstant ? "constant" : "poisson";
}

ArrivalSchedule::ArrivalSchedule(ArrivalProcess process, double rate_per_second, uint64_t seed)
    : process_(process), rate_(rate_per_second), rng_(seed) {}

int64_t ArrivalSchedule::NextOffsetNs() {
  if (process_ == ArrivalProcess::kConstant) {
    // Computed from the index, not summed, so rounding never drifts over a long run.
    return std::llround(static_cast<double>(index_++) * 1e9 / rate_);
  }
  // u uniform in [0, 1) from the top 53 bits; -log(1 - u) / rate is Exp(rate).
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  time_s_ += -std::log1p(-u) / rate_;
  return std::llround(time_s_ * 1e9);
}

}  // namespace iis::client
