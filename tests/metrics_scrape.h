// Test helpers for the Prometheus endpoint: a plain HTTP/1.0 client for 127.0.0.1 and a parser of
// the text exposition format. Used by the metrics unit tests and the server integration tests.
#pragma once

#include <map>
#include <string>

#include "absl/strings/string_view.h"

namespace iis {

// Sends "METHOD path HTTP/1.0" to 127.0.0.1:port and returns the whole response (status line,
// headers and body), or "" when nothing accepts the connection. Thread-safe.
std::string HttpRequest(int port, absl::string_view method, absl::string_view path);

// HttpRequest(port, "GET", path).
std::string HttpGet(int port, absl::string_view path);

// Parses Prometheus text exposition into {"name{label=\"value\",...}" -> value}, exactly as the
// series are written (labels in the order the exporter prints them). Comment lines and lines
// without a numeric value (e.g. an HTTP header) are skipped, so a whole response can be passed.
std::map<std::string, double> ParseExposition(absl::string_view text);

// Returns samples[series], or 0 when that series is absent (a counter never incremented).
double SampleOrZero(const std::map<std::string, double>& samples, const std::string& series);

}  // namespace iis
