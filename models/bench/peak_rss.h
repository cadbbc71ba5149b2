// The process's peak resident memory, for the models' benchmarks. Header-only, thread-safe.
#pragma once

#include <sys/resource.h>

namespace iis::models::bench {

// Returns the peak resident set size of this process so far, in MB (getrusage's ru_maxrss).
inline double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

}  // namespace iis::models::bench
