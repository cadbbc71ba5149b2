// internimage-loadgen's --plot: latency percentiles and throughput against concurrency or rate,
// drawn with OpenCV (axes, ticks, labels, legend) into a PNG.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/loadgen/report.h"
#include "client/loadgen/runner.h"
#include "opencv2/core/mat.hpp"

namespace iis::client {

// Returns the chart as an 8-bit BGR image (1000 x 760): p50/p90/p99 latency in ms above,
// throughput (successful calls/s, and the offered rate for open-loop runs) below, both against
// the step's concurrency or rate (a logarithmic axis when the values span 8x or more).
cv::Mat RenderPlot(const RunSummary& summary, const std::vector<StepResult>& steps);

// Renders the chart and writes it to `path` as PNG. Fails with UNAVAILABLE naming the path when
// it cannot be written.
absl::Status WritePlot(const std::string& path, const RunSummary& summary,
                       const std::vector<StepResult>& steps);

}  // namespace iis::client
