#include "client/loadgen/report.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace iis::client {
namespace {

double Ms(int64_t ns) { return ns * 1e-6; }

std::string StepValue(const StepResult& result) {
  return result.step.concurrency > 0 ? absl::StrCat(result.step.concurrency)
                                     : absl::StrFormat("%g", result.step.rate);
}

// CPU milliseconds this process spent per 1,000 completed calls.
double CpuMsPerThousand(const StepResult& result) {
  const int64_t done = result.ok + result.failed + result.warmup_calls;
  return done == 0 ? 0.0 : result.cpu_s * 1e3 / done * 1000.0;
}

std::string CsvField(absl::string_view text) {
  if (text.find_first_of(",\"\n") == absl::string_view::npos) return std::string(text);
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted.push_back('"');
    quoted.push_back(c);
  }
  return quoted + "\"";
}

}  // namespace

const std::vector<PercentileColumn>& ReportedPercentiles() {
  static const auto* const kColumns = new std::vector<PercentileColumn>{
      {"p50", 50}, {"p90", 90}, {"p95", 95}, {"p99", 99}, {"p999", 99.9}};
  return *kColumns;
}

std::string FormatReportTable(const RunSummary& summary, const std::vector<StepResult>& steps) {
  const std::string model =
      summary.rpc == "health"
          ? ""
          : absl::StrCat(", model ", summary.model.empty() ? "(server default)" : summary.model);
  std::string out = absl::StrFormat(
      "%s on %s%s%s, %s\n", summary.rpc, absl::StrJoin(summary.targets, ", "),
      summary.connections > 1 ? absl::StrFormat(" (%d connections each)", summary.connections) : "",
      model,
      summary.open_loop
          ? absl::StrCat("open loop, ", ArrivalProcessName(summary.arrivals), " arrivals")
          : "closed loop");
  const char* x_name = summary.open_loop ? "rate/s" : "conc";
  absl::StrAppendFormat(
      &out, "%-8s %9s %7s %10s | %8s %8s %8s %8s %8s %8s %8s %8s  (latency, ms)\n", x_name, "ok",
      "failed", "req/s", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max");
  for (const StepResult& r : steps) {
    const LatencyHistogram& h = r.latency;
    absl::StrAppendFormat(
        &out, "%-8s %9d %7d %10.1f | %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f%s\n",
        StepValue(r), r.ok, r.failed, r.throughput_rps, Ms(h.min()), h.mean() * 1e-6,
        Ms(h.ValueAtPercentile(50)), Ms(h.ValueAtPercentile(90)), Ms(h.ValueAtPercentile(95)),
        Ms(h.ValueAtPercentile(99)), Ms(h.ValueAtPercentile(99.9)), Ms(h.max()),
        r.interrupted ? "  (interrupted)" : "");
  }
  bool any_server_timing = false;
  for (const StepResult& r : steps) any_server_timing |= r.server.answers > 0;
  if (any_server_timing) {
    absl::StrAppendFormat(&out,
                          "\nserver time per answer (ms, means from the answers' metadata)\n");
    absl::StrAppendFormat(&out, "%-8s %8s %10s %9s %11s %8s %6s\n", x_name, "queue", "preprocess",
                          "inference", "postprocess", "total", "batch");
    for (const StepResult& r : steps) {
      const ServerTiming& s = r.server;
      absl::StrAppendFormat(&out, "%-8s %8.3f %10.3f %9.3f %11.3f %8.3f %6.2f\n", StepValue(r),
                            s.queue_us / 1e3, s.preprocess_us / 1e3, s.inference_us / 1e3,
                            s.postprocess_us / 1e3, s.total_us / 1e3, s.batch_size);
    }
  }
  for (const StepResult& r : steps) {
    for (const auto& [code, count] : r.errors) {
      auto text = r.error_text.find(code);
      absl::StrAppendFormat(&out, "errors at %s %s: %s x%d (e.g. \"%s\")\n", x_name, StepValue(r),
                            code, count, text == r.error_text.end() ? "" : text->second);
    }
  }
  if (summary.targets.size() > 1) {
    out += "\nper target (ok/failed)\n";
    for (const StepResult& r : steps) {
      std::vector<std::string> parts;
      for (size_t t = 0; t < summary.targets.size(); ++t) {
        parts.push_back(absl::StrFormat("%s %d/%d", summary.targets[t], r.ok_per_target[t],
                                        r.failed_per_target[t]));
      }
      absl::StrAppendFormat(&out, "%-8s %s\n", StepValue(r), absl::StrJoin(parts, ", "));
    }
  }
  out += "\ngenerator CPU (user+system): ";
  std::vector<std::string> cpu;
  cpu.reserve(steps.size());
  for (const StepResult& r : steps) {
    cpu.push_back(absl::StrFormat("%s %s: %.2f s, %.1f ms per 1000 calls", x_name, StepValue(r),
                                  r.cpu_s, CpuMsPerThousand(r)));
  }
  absl::StrAppend(&out, absl::StrJoin(cpu, "; "), "\n");
  return out;
}

std::string FormatReportJson(const RunSummary& summary, const std::vector<StepResult>& steps) {
  // Keys stay in the order they are written.
  using Json = nlohmann::ordered_json;
  // A measured value rounded to 10 significant digits: nlohmann writes the shortest text that
  // reads back as the same double, so 0.399743 instead of 0.39974299999999996. NaN and infinities
  // (an empty histogram's mean) pass through, and nlohmann writes them as null.
  const auto number = [](double value) {
    if (!std::isfinite(value)) return value;
    char text[32];
    std::snprintf(text, sizeof(text), "%.10g", value);
    return std::strtod(text, nullptr);
  };
  Json document;
  document["tool"] = "internimage-loadgen";
  document["rpc"] = summary.rpc;
  document["model"] = summary.model;
  document["targets"] = summary.targets;
  document["connections_per_target"] = summary.connections;
  document["mode"] = summary.open_loop ? "open" : "closed";
  if (summary.open_loop) document["arrivals"] = std::string(ArrivalProcessName(summary.arrivals));
  document["warmup_s"] = number(absl::ToDoubleSeconds(summary.warmup));
  document["duration_s"] = number(absl::ToDoubleSeconds(summary.duration));
  document["requests_per_step"] = summary.requests;
  document["distinct_requests"] = summary.images;
  document["mean_request_bytes"] = summary.mean_request_bytes;
  Json& json_steps = document["steps"] = Json::array();
  for (const StepResult& r : steps) {
    Json& step = json_steps.emplace_back();
    if (r.step.concurrency > 0) {
      step["concurrency"] = r.step.concurrency;
    } else {
      step["rate"] = number(r.step.rate);
    }
    step["requests_sent"] = r.sent;
    step["requests_ok"] = r.ok;
    step["requests_failed"] = r.failed;
    step["warmup_requests"] = r.warmup_calls;
    step["elapsed_s"] = number(r.elapsed_s);
    step["throughput_rps"] = number(r.throughput_rps);
    step["interrupted"] = r.interrupted;
    Json& latency = step["latency_ms"];
    latency["min"] = number(Ms(r.latency.min()));
    latency["mean"] = number(r.latency.mean() * 1e-6);
    for (const PercentileColumn& column : ReportedPercentiles()) {
      latency[column.key] = number(Ms(r.latency.ValueAtPercentile(column.percentile)));
    }
    latency["max"] = number(Ms(r.latency.max()));
    Json& errors = step["errors"] = Json::object();
    for (const auto& [code, count] : r.errors) errors[code] = count;
    Json& examples = step["error_examples"] = Json::object();
    for (const auto& [code, text] : r.error_text) examples[code] = text;
    Json& server = step["server_timing_ms"];
    server["answers"] = r.server.answers;
    server["queue"] = number(r.server.queue_us / 1e3);
    server["preprocess"] = number(r.server.preprocess_us / 1e3);
    server["inference"] = number(r.server.inference_us / 1e3);
    server["postprocess"] = number(r.server.postprocess_us / 1e3);
    server["total"] = number(r.server.total_us / 1e3);
    server["batch_size"] = number(r.server.batch_size);
    Json& per_target = step["per_target"] = Json::array();
    for (size_t t = 0; t < summary.targets.size(); ++t) {
      Json& target = per_target.emplace_back();
      target["target"] = summary.targets[t];
      target["requests_ok"] = r.ok_per_target[t];
      target["requests_failed"] = r.failed_per_target[t];
    }
    if (r.step.concurrency == 0) {
      Json& lag = step["send_lag_ms"];
      lag["mean"] = number(r.send_lag_mean_ms);
      lag["max"] = number(r.send_lag_max_ms);
    }
    Json& cpu = step["client_cpu"];
    cpu["seconds"] = number(r.cpu_s);
    cpu["ms_per_1000_requests"] = number(CpuMsPerThousand(r));
  }
  // Bytes that are not UTF-8 (in a server's error message) become U+FFFD: always valid JSON.
  return document.dump(2, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace) + "\n";
}

std::string FormatReportCsv(const RunSummary& summary, const std::vector<StepResult>& steps) {
  std::string out =
      "rpc,mode,concurrency,rate,requests_sent,requests_ok,requests_failed,elapsed_s,"
      "throughput_rps,latency_min_ms,latency_mean_ms";
  for (const PercentileColumn& column : ReportedPercentiles()) {
    absl::StrAppend(&out, ",latency_", column.key, "_ms");
  }
  out +=
      ",latency_max_ms,server_queue_ms,server_preprocess_ms,server_inference_ms,"
      "server_postprocess_ms,server_total_ms,server_batch_size,client_cpu_s,errors\n";
  for (const StepResult& r : steps) {
    std::vector<std::string> errors;
    for (const auto& [code, count] : r.errors) errors.push_back(absl::StrCat(code, "=", count));
    absl::StrAppendFormat(&out, "%s,%s,%d,%g,%d,%d,%d,%.6f,%.3f,%.6f,%.6f", summary.rpc,
                          summary.open_loop ? "open" : "closed", r.step.concurrency, r.step.rate,
                          r.sent, r.ok, r.failed, r.elapsed_s, r.throughput_rps,
                          Ms(r.latency.min()), r.latency.mean() * 1e-6);
    for (const PercentileColumn& column : ReportedPercentiles()) {
      absl::StrAppendFormat(&out, ",%.6f", Ms(r.latency.ValueAtPercentile(column.percentile)));
    }
    absl::StrAppendFormat(&out, ",%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.3f,%.3f,%s\n",
                          Ms(r.latency.max()), r.server.queue_us / 1e3,
                          r.server.preprocess_us / 1e3, r.server.inference_us / 1e3,
                          r.server.postprocess_us / 1e3, r.server.total_us / 1e3,
                          r.server.batch_size, r.cpu_s, CsvField(absl::StrJoin(errors, ";")));
  }
  return out;
}

}  // namespace iis::client
