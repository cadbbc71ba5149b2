#include "client/loadgen/report.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/common/json_writer.h"

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
  for (const StepResult& r : steps) {
    cpu.push_back(absl::StrFormat("%s %s: %.2f s, %.1f ms per 1000 calls", x_name, StepValue(r),
                                  r.cpu_s, CpuMsPerThousand(r)));
  }
  absl::StrAppend(&out, absl::StrJoin(cpu, "; "), "\n");
  return out;
}

std::string FormatReportJson(const RunSummary& summary, const std::vector<StepResult>& steps) {
  JsonWriter json;
  json.BeginObject();
  json.Key("tool").String("internimage-loadgen");
  json.Key("rpc").String(summary.rpc);
  json.Key("model").String(summary.model);
  json.Key("targets").BeginArray();
  for (const std::string& target : summary.targets) json.String(target);
  json.EndArray();
  json.Key("connections_per_target").Int(summary.connections);
  json.Key("mode").String(summary.open_loop ? "open" : "closed");
  if (summary.open_loop) json.Key("arrivals").String(ArrivalProcessName(summary.arrivals));
  json.Key("warmup_s").Double(absl::ToDoubleSeconds(summary.warmup));
  json.Key("duration_s").Double(absl::ToDoubleSeconds(summary.duration));
  json.Key("requests_per_step").Int(summary.requests);
  json.Key("distinct_requests").Int(summary.images);
  json.Key("mean_request_bytes").Int(summary.mean_request_bytes);
  json.Key("steps").BeginArray();
  for (const StepResult& r : steps) {
    json.BeginObject();
    if (r.step.concurrency > 0) {
      json.Key("concurrency").Int(r.step.concurrency);
    } else {
      json.Key("rate").Double(r.step.rate);
    }
    json.Key("requests_sent").Int(r.sent);
    json.Key("requests_ok").Int(r.ok);
    json.Key("requests_failed").Int(r.failed);
    json.Key("warmup_requests").Int(r.warmup_calls);
    json.Key("elapsed_s").Double(r.elapsed_s);
    json.Key("throughput_rps").Double(r.throughput_rps);
    json.Key("interrupted").Bool(r.interrupted);
    json.Key("latency_ms").BeginObject();
    json.Key("min").Double(Ms(r.latency.min()));
    json.Key("mean").Double(r.latency.mean() * 1e-6);
    for (const PercentileColumn& column : ReportedPercentiles()) {
      json.Key(column.key).Double(Ms(r.latency.ValueAtPercentile(column.percentile)));
    }
    json.Key("max").Double(Ms(r.latency.max()));
    json.EndObject();
    json.Key("errors").BeginObject();
    for (const auto& [code, count] : r.errors) json.Key(code).Int(count);
    json.EndObject();
    json.Key("error_examples").BeginObject();
    for (const auto& [code, text] : r.error_text) json.Key(code).String(text);
    json.EndObject();
    json.Key("server_timing_ms").BeginObject();
    json.Key("answers").Int(r.server.answers);
    json.Key("queue").Double(r.server.queue_us / 1e3);
    json.Key("preprocess").Double(r.server.preprocess_us / 1e3);
    json.Key("inference").Double(r.server.inference_us / 1e3);
    json.Key("postprocess").Double(r.server.postprocess_us / 1e3);
    json.Key("total").Double(r.server.total_us / 1e3);
    json.Key("batch_size").Double(r.server.batch_size);
    json.EndObject();
    json.Key("per_target").BeginArray();
    for (size_t t = 0; t < summary.targets.size(); ++t) {
      json.BeginObject();
      json.Key("target").String(summary.targets[t]);
      json.Key("requests_ok").Int(r.ok_per_target[t]);
      json.Key("requests_failed").Int(r.failed_per_target[t]);
      json.EndObject();
    }
    json.EndArray();
    if (r.step.concurrency == 0) {
      json.Key("send_lag_ms").BeginObject();
      json.Key("mean").Double(r.send_lag_mean_ms);
      json.Key("max").Double(r.send_lag_max_ms);
      json.EndObject();
    }
    json.Key("client_cpu").BeginObject();
    json.Key("seconds").Double(r.cpu_s);
    json.Key("ms_per_1000_requests").Double(CpuMsPerThousand(r));
    json.EndObject();
    json.EndObject();
  }
  json.EndArray();
  json.EndObject();
  return json.str();
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
