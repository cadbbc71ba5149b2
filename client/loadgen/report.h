// internimage-loadgen's results: the table on stdout, the --json document and the --csv file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/loadgen/arrivals.h"
#include "client/loadgen/runner.h"

namespace iis::client {

// The settings of a run, repeated in every output so a file explains itself.
struct RunSummary {
  std::string rpc;    // --rpc
  std::string model;  // empty: the server's default
  std::vector<std::string> targets;
  int connections = 1;
  bool open_loop = false;
  ArrivalProcess arrivals = ArrivalProcess::kPoisson;
  absl::Duration warmup;
  absl::Duration duration;  // zero: none
  int64_t requests = 0;     // zero: none
  int images = 0;           // distinct request payloads
  int64_t mean_request_bytes = 0;
};

// The percentiles every output reports, with their JSON/CSV key.
struct PercentileColumn {
  const char* key;  // "p50", "p999", ...
  double percentile;
};
const std::vector<PercentileColumn>& ReportedPercentiles();

// Returns the human-readable report: one row per step (counts, throughput, latency in ms),
// then the server timing, errors by code, per-target counts and the generator's CPU use.
std::string FormatReportTable(const RunSummary& summary, const std::vector<StepResult>& steps);

// Returns the JSON document: {"tool", "rpc", "model", "targets", ..., "steps": [...]}, one step
// object per entry with requests_ok, requests_failed, throughput_rps, latency_ms, errors,
// server_timing_ms, per_target and client_cpu.
std::string FormatReportJson(const RunSummary& summary, const std::vector<StepResult>& steps);

// Returns a CSV file: a header line and one line per step.
std::string FormatReportCsv(const RunSummary& summary, const std::vector<StepResult>& steps);

}  // namespace iis::client
