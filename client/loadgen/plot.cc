#include "client/loadgen/plot.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/common/images.h"
#include "opencv2/imgproc.hpp"

namespace iis::client {
namespace {

constexpr int kWidth = 1000;
constexpr int kHeight = 760;
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
const cv::Scalar kBlack(0, 0, 0);
const cv::Scalar kGrid(225, 225, 225);
const cv::Scalar kP50(180, 119, 31);  // blue
const cv::Scalar kP90(14, 127, 255);  // orange
const cv::Scalar kP99(40, 39, 214);   // red
const cv::Scalar kOk(44, 160, 44);    // green
const cv::Scalar kOffered(150, 150, 150);

// One chart area with its data ranges.
struct Panel {
  cv::Rect area;
  double x_min = 0;
  double x_max = 1;
  bool log_x = false;
  double y_max = 1;

  int X(double x) const {
    const double t = log_x ? (std::log(x) - std::log(x_min)) / (std::log(x_max) - std::log(x_min))
                           : (x - x_min) / (x_max - x_min);
    return area.x + static_cast<int>(std::lround(t * area.width));
  }
  int Y(double y) const {
    return area.y + area.height -
           static_cast<int>(std::lround(std::clamp(y / y_max, 0.0, 1.05) * area.height));
  }
};

// The smallest 1, 2 or 5 x 10^k that is >= value.
double NiceCeil(double value) {
  if (value <= 0) return 1;
  const double magnitude = std::pow(10.0, std::floor(std::log10(value)));
  for (double step : {1.0, 2.0, 5.0, 10.0}) {
    if (step * magnitude >= value * (1 - 1e-12)) return step * magnitude;
  }
  return 10 * magnitude;
}

void PutText(cv::Mat& image, const std::string& text, cv::Point origin, double scale,
             const cv::Scalar& colour = kBlack, int thickness = 1) {
  cv::putText(image, text, origin, kFont, scale, colour, thickness, cv::LINE_AA);
}

// Draws `text` centred at `centre`, rotated 90 degrees counter-clockwise (a y-axis label).
void PutVerticalText(cv::Mat& image, const std::string& text, cv::Point centre, double scale) {
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, kFont, scale, 1, &baseline);
  cv::Mat strip(size.height + baseline + 4, size.width + 4, CV_8UC3, cv::Scalar::all(255));
  PutText(strip, text, cv::Point(2, size.height + 2), scale);
  cv::Mat rotated;
  cv::rotate(strip, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
  cv::Rect roi(centre.x - rotated.cols / 2, centre.y - rotated.rows / 2, rotated.cols,
               rotated.rows);
  roi &= cv::Rect(0, 0, image.cols, image.rows);
  rotated(cv::Rect(0, 0, roi.width, roi.height)).copyTo(image(roi));
}

std::string Number(double value) { return absl::StrFormat("%g", value); }

void DrawAxes(cv::Mat& image, const Panel& panel, const std::vector<double>& xs,
              const std::string& title, const std::string& x_label, const std::string& y_label) {
  const cv::Rect& a = panel.area;
  constexpr int kYTicks = 5;
  for (int i = 0; i <= kYTicks; ++i) {
    const double y = panel.y_max * i / kYTicks;
    const int py = panel.Y(y);
    cv::line(image, {a.x, py}, {a.x + a.width, py}, kGrid, 1);
    cv::line(image, {a.x - 5, py}, {a.x, py}, kBlack, 1);
    const std::string label = Number(y);
    int baseline = 0;
    const cv::Size size = cv::getTextSize(label, kFont, 0.45, 1, &baseline);
    PutText(image, label, {a.x - 9 - size.width, py + size.height / 2}, 0.45);
  }
  for (double x : xs) {
    const int px = panel.X(x);
    cv::line(image, {px, a.y}, {px, a.y + a.height}, kGrid, 1);
    cv::line(image, {px, a.y + a.height}, {px, a.y + a.height + 5}, kBlack, 1);
    const std::string label = Number(x);
    int baseline = 0;
    const cv::Size size = cv::getTextSize(label, kFont, 0.45, 1, &baseline);
    PutText(image, label, {px - size.width / 2, a.y + a.height + 22}, 0.45);
  }
  cv::line(image, {a.x, a.y + a.height}, {a.x + a.width, a.y + a.height}, kBlack, 2);
  cv::line(image, {a.x, a.y}, {a.x, a.y + a.height}, kBlack, 2);
  PutText(image, title, {a.x, a.y - 12}, 0.6, kBlack, 2);
  int baseline = 0;
  const cv::Size size = cv::getTextSize(x_label, kFont, 0.5, 1, &baseline);
  PutText(image, x_label, {a.x + a.width / 2 - size.width / 2, a.y + a.height + 45}, 0.5);
  PutVerticalText(image, y_label, {a.x - 70, a.y + a.height / 2}, 0.5);
}

void DrawSeries(cv::Mat& image, const Panel& panel, const std::vector<double>& xs,
                const std::vector<double>& ys, const cv::Scalar& colour, bool dashed = false) {
  std::vector<cv::Point> points;
  for (size_t i = 0; i < xs.size(); ++i) points.emplace_back(panel.X(xs[i]), panel.Y(ys[i]));
  for (size_t i = 1; i < points.size(); ++i) {
    if (!dashed) {
      cv::line(image, points[i - 1], points[i], colour, 2, cv::LINE_AA);
      continue;
    }
    const cv::Point2d from = points[i - 1], delta = cv::Point2d(points[i]) - from;
    const double length = std::hypot(delta.x, delta.y);
    for (double t = 0; t < length; t += 14) {
      const double end = std::min(length, t + 7);
      cv::line(image, from + delta * (t / length), from + delta * (end / length), colour, 2,
               cv::LINE_AA);
    }
  }
  for (const cv::Point& p : points) {
    cv::circle(image, p, 4, colour, cv::FILLED, cv::LINE_AA);
  }
}

void DrawLegend(cv::Mat& image, cv::Point origin,
                const std::vector<std::pair<std::string, cv::Scalar>>& entries) {
  const int height = 22 * static_cast<int>(entries.size()) + 8;
  int width = 0;
  for (const auto& entry : entries) {
    int baseline = 0;
    width = std::max(width, cv::getTextSize(entry.first, kFont, 0.5, 1, &baseline).width);
  }
  const cv::Rect box(origin.x, origin.y, width + 56, height);
  cv::rectangle(image, box, cv::Scalar::all(255), cv::FILLED);
  cv::rectangle(image, box, kBlack, 1);
  for (size_t i = 0; i < entries.size(); ++i) {
    const int y = origin.y + 18 + 22 * static_cast<int>(i);
    cv::line(image, {origin.x + 8, y - 5}, {origin.x + 38, y - 5}, entries[i].second, 2,
             cv::LINE_AA);
    cv::circle(image, {origin.x + 23, y - 5}, 4, entries[i].second, cv::FILLED, cv::LINE_AA);
    PutText(image, entries[i].first, {origin.x + 46, y}, 0.5);
  }
}

}  // namespace

cv::Mat RenderPlot(const RunSummary& summary, const std::vector<StepResult>& steps) {
  cv::Mat image(kHeight, kWidth, CV_8UC3, cv::Scalar::all(255));
  std::vector<double> xs, p50, p90, p99, ok_rate;
  double latency_max = 0, rate_max = 0;
  for (const StepResult& r : steps) {
    xs.push_back(r.step.concurrency > 0 ? r.step.concurrency : r.step.rate);
    p50.push_back(r.latency.ValueAtPercentile(50) * 1e-6);
    p90.push_back(r.latency.ValueAtPercentile(90) * 1e-6);
    p99.push_back(r.latency.ValueAtPercentile(99) * 1e-6);
    ok_rate.push_back(r.throughput_rps);
    latency_max = std::max(latency_max, p99.back());
    rate_max = std::max({rate_max, ok_rate.back(), summary.open_loop ? xs.back() : 0.0});
  }
  // Keep the points in axis order (a sweep may be given in any order).
  std::vector<size_t> order(xs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&xs](size_t a, size_t b) { return xs[a] < xs[b]; });
  auto sorted = [&order](const std::vector<double>& v) {
    std::vector<double> out;
    out.reserve(order.size());
    for (size_t i : order) out.push_back(v[i]);
    return out;
  };
  xs = sorted(xs);

  Panel latency, throughput;
  latency.area = cv::Rect(110, 80, kWidth - 150, 250);
  throughput.area = cv::Rect(110, 440, kWidth - 150, 230);
  for (Panel* panel : {&latency, &throughput}) {
    if (xs.empty()) break;
    panel->x_min = xs.front();
    panel->x_max = xs.back();
    panel->log_x = xs.front() > 0 && xs.back() / xs.front() >= 8;
    if (panel->x_max <= panel->x_min) {  // one step: centre it
      panel->x_min = xs.front() * 0.5;
      panel->x_max = xs.front() * 1.5;
      panel->log_x = false;
    } else if (!panel->log_x) {
      const double pad = (panel->x_max - panel->x_min) * 0.05;
      panel->x_min -= pad;
      panel->x_max += pad;
    } else {
      panel->x_min /= 1.15;
      panel->x_max *= 1.15;
    }
  }
  latency.y_max = NiceCeil(latency_max * 1.1);
  throughput.y_max = NiceCeil(rate_max * 1.1);

  const std::string title = absl::StrCat(
      "internimage-loadgen: ", summary.rpc, summary.model.empty() ? "" : " / " + summary.model,
      ", ", summary.open_loop ? "open loop" : "closed loop", ", ", summary.targets.size(),
      summary.targets.size() == 1 ? " target" : " targets");
  PutText(image, title, {20, 32}, 0.7, kBlack, 2);
  const std::string x_label =
      summary.open_loop ? "offered rate (calls/s)" : "concurrency (calls in flight)";
  DrawAxes(image, latency, xs, "Latency percentiles", x_label, "latency (ms)");
  DrawAxes(image, throughput, xs, "Throughput", x_label, "calls/s");
  DrawSeries(image, latency, xs, sorted(p50), kP50);
  DrawSeries(image, latency, xs, sorted(p90), kP90);
  DrawSeries(image, latency, xs, sorted(p99), kP99);
  DrawLegend(image, {latency.area.x + 12, latency.area.y + 8},
             {{"p50", kP50}, {"p90", kP90}, {"p99", kP99}});
  std::vector<std::pair<std::string, cv::Scalar>> throughput_legend = {{"successful calls/s", kOk}};
  if (summary.open_loop) {
    DrawSeries(image, throughput, xs, xs, kOffered, /*dashed=*/true);
    throughput_legend.emplace_back("offered rate", kOffered);
  }
  DrawSeries(image, throughput, xs, sorted(ok_rate), kOk);
  DrawLegend(image, {throughput.area.x + 12, throughput.area.y + 8}, throughput_legend);
  return image;
}

absl::Status WritePlot(const std::string& path, const RunSummary& summary,
                       const std::vector<StepResult>& steps) {
  absl::Status written = WritePng(path, RenderPlot(summary, steps));
  if (!written.ok()) return absl::UnavailableError(absl::StrCat("--plot: ", written.message()));
  return written;
}

}  // namespace iis::client
