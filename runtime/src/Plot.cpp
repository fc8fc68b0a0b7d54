// Plot.cpp - see Plot.h. Colours are matplotlib's first three (blue train,
// orange test, green accuracy), which the tests find in the rendered image.
#include "Plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace netc::rt {

namespace {

constexpr const char *kTrain = "#1f77b4", *kTest = "#ff7f0e", *kAccuracy = "#2ca02c";

std::string escaped(const std::string &text) {
  std::string out;
  for (char c : text) {
    switch (c) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    default:
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string coordinate(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string header(double width, double height, const std::string &title) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + number(width) + "\" height=\"" +
         number(height) + "\" viewBox=\"0 0 " + number(width) + " " + number(height) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n<title>" + escaped(title) +
         "</title>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
         "<text x=\"" +
         number(width / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" +
         escaped(title) + "</text>\n";
}

std::string text(double x, double y, const std::string &s, const char *anchor = "middle",
                 const char *extra = "") {
  return "<text x=\"" + coordinate(x) + "\" y=\"" + coordinate(y) + "\" text-anchor=\"" + anchor +
         "\"" + extra + ">" + escaped(s) + "</text>\n";
}

/// About `count` round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi, int count = 5) {
  double raw = (hi - lo) / count, magnitude = std::pow(10, std::floor(std::log10(raw)));
  double f = raw / magnitude;
  double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * magnitude;
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    out.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  return out;
}

/// One series: points (x, y) drawn as a line, with markers if few.
struct Series {
  std::string label;
  const char *color;
  std::vector<std::pair<double, double>> points;
  bool thin = false;
};

/// A panel of the training plot at (left, top), of size w x h: axes,
/// ticks, labels and the series, on a log scale when `logScale`.
std::string panel(double left, double top, double w, double h, const std::string &yLabel,
                  const std::vector<Series> &series, bool logScale) {
  double x0 = std::numeric_limits<double>::max(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series &s : series)
    for (auto [x, y] : s.points) {
      x0 = std::min(x0, x), x1 = std::max(x1, x);
      y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (x1 < x0)
    return "";
  if (x1 == x0)
    x0 -= 1, x1 += 1;
  auto scaled = [&](double y) { return logScale ? std::log10(y) : y; };
  double s0 = scaled(y0), s1 = scaled(y1);
  if (s1 - s0 < 1e-12)
    s0 -= std::max(std::abs(s0) * 0.05, 1e-3), s1 += std::max(std::abs(s1) * 0.05, 1e-3);
  double pad = (s1 - s0) * 0.05;
  s0 -= pad, s1 += pad;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * w; };
  auto py = [&](double y) { return top + h - (scaled(y) - s0) / (s1 - s0) * h; };

  std::string svg = "<rect x=\"" + coordinate(left) + "\" y=\"" + coordinate(top) +
                    "\" width=\"" + coordinate(w) + "\" height=\"" + coordinate(h) +
                    "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (double t : ticks(x0, x1))
    svg += "<line x1=\"" + coordinate(px(t)) + "\" y1=\"" + coordinate(top + h) + "\" x2=\"" +
           coordinate(px(t)) + "\" y2=\"" + coordinate(top + h + 5) + "\" stroke=\"#444\"/>\n" +
           text(px(t), top + h + 18, number(t));
  std::vector<double> yTicks;
  if (logScale)
    for (double e = std::floor(s0); e <= std::ceil(s1); ++e)
      for (double m : {1.0, 2.0, 5.0})
        if (double v = m * std::pow(10, e); std::log10(v) >= s0 && std::log10(v) <= s1 &&
                                            (m == 1 || s1 - s0 < 3))
          yTicks.push_back(v);
  if (!logScale)
    yTicks = ticks(s0, s1);
  for (double t : yTicks)
    svg += "<line x1=\"" + coordinate(left - 5) + "\" y1=\"" + coordinate(py(t)) + "\" x2=\"" +
           coordinate(left + w) + "\" y2=\"" + coordinate(py(t)) +
           "\" stroke=\"#ddd\"/>\n" + text(left - 8, py(t) + 4, number(t), "end");
  svg += text(left + w / 2, top + h + 36, "step");
  svg += text(left - 52, top + h / 2, yLabel + (logScale ? " (log scale)" : ""), "middle",
              (" transform=\"rotate(-90 " + coordinate(left - 52) + " " +
               coordinate(top + h / 2) + ")\"")
                  .c_str());
  // The legend above the panel, so that inside it there are only curves.
  double legendX = left;
  for (const Series &s : series) {
    if (s.points.empty())
      continue;
    std::string path;
    for (auto [x, y] : s.points)
      path += (path.empty() ? "M" : " L") + coordinate(px(x)) + " " + coordinate(py(y));
    svg += "<path d=\"" + path + "\" fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"" +
           (s.thin ? "1.5" : "3") + "\"" + (s.thin ? " stroke-opacity=\"0.6\"" : "") + "/>\n";
    if (!s.thin && s.points.size() <= 60)
      for (auto [x, y] : s.points)
        svg += "<circle cx=\"" + coordinate(px(x)) + "\" cy=\"" + coordinate(py(y)) +
               "\" r=\"4\" fill=\"" + s.color + "\"/>\n";
    svg += "<line x1=\"" + coordinate(legendX) + "\" y1=\"" + coordinate(top - 12) + "\" x2=\"" +
           coordinate(legendX + 20) + "\" y2=\"" + coordinate(top - 12) + "\" stroke=\"" +
           s.color + "\" stroke-width=\"" + (s.thin ? "1.5" : "3") + "\"/>\n" +
           text(legendX + 25, top - 8, s.label, "start");
    legendX += 40 + 7.0 * static_cast<double>(s.label.size());
  }
  return svg;
}

} // namespace

std::vector<nlohmann::json> lastRun(const std::vector<nlohmann::json> &records) {
  size_t start = 0;
  int64_t last = -1;
  for (size_t i = 0; i < records.size(); ++i) {
    int64_t step = records[i].value("step", int64_t(-1));
    if (step >= 0 && step < last)
      start = i;
    if (step >= 0)
      last = step;
  }
  return {records.begin() + static_cast<std::ptrdiff_t>(start), records.end()};
}

std::string trainingPlot(const std::vector<nlohmann::json> &records, const std::string &title) {
  Series reported{"train (reports)", kTrain, {}, true}, trained{"train (epochs)", kTrain, {}};
  Series tested{"test", kTest, {}}, accuracy{"test accuracy", kAccuracy, {}};
  auto finite = [](const nlohmann::json &r, const char *key) {
    return r.contains(key) && r[key].is_number() && std::isfinite(r[key].get<double>());
  };
  for (const nlohmann::json &r : records) {
    if (!r.contains("step") || !r["step"].is_number())
      continue;
    double step = r["step"].get<double>();
    std::string event = r.value("event", "");
    if (event == "report" && finite(r, "loss"))
      reported.points.push_back({step, r["loss"].get<double>()});
    if (event == "epoch" && finite(r, "train_loss"))
      trained.points.push_back({step, r["train_loss"].get<double>()});
    if (finite(r, "test_loss"))
      tested.points.push_back({step, r["test_loss"].get<double>()});
    if (finite(r, "test_accuracy"))
      accuracy.points.push_back({step, 100 * r["test_accuracy"].get<double>()});
  }
  // Without epochs (whole-set training) the reports are the training curve.
  if (trained.points.empty()) {
    reported.thin = false;
    reported.label = "train";
  }
  double lo = std::numeric_limits<double>::max(), hi = 0;
  for (const Series *s : {&reported, &trained, &tested})
    for (auto [x, y] : s->points)
      lo = std::min(lo, y), hi = std::max(hi, y);
  bool logScale = lo > 0 && hi / lo > 50;
  bool twoPanels = !accuracy.points.empty();
  double width = twoPanels ? 1000 : 640, height = 440;
  std::string svg = header(width, height, title);
  svg += panel(90, 70, twoPanels ? 380 : 500, 300, "loss", {reported, trained, tested}, logScale);
  if (twoPanels)
    svg += panel(590, 70, 380, 300, "test accuracy (%)", {accuracy}, false);
  if (reported.points.empty() && trained.points.empty() && tested.points.empty())
    svg += text(width / 2, height / 2, "no training records yet");
  return svg + "</svg>\n";
}

std::string confusionPlot(const std::vector<std::string> &classes,
                          const std::vector<int64_t> &counts, const std::string &title) {
  auto k = static_cast<int64_t>(classes.size());
  double cell = std::clamp(520.0 / static_cast<double>(std::max<int64_t>(k, 1)), 14.0, 48.0);
  size_t longest = 1;
  for (const auto &c : classes)
    longest = std::max(longest, c.size());
  double margin = 60 + 7.0 * static_cast<double>(std::min<size_t>(longest, 24));
  double width = margin + cell * static_cast<double>(k) + 40;
  double height = 60 + margin + cell * static_cast<double>(k);
  std::string svg = header(width, height, title);
  double left = margin, top = 60;
  svg += "<g shape-rendering=\"crispEdges\">\n";
  for (int64_t e = 0; e < k; ++e) {
    int64_t total = 0;
    for (int64_t p = 0; p < k; ++p)
      total += counts[static_cast<size_t>(e * k + p)];
    for (int64_t p = 0; p < k; ++p) {
      int64_t c = counts[static_cast<size_t>(e * k + p)];
      double share = total > 0 ? static_cast<double>(c) / static_cast<double>(total) : 0;
      int shade = static_cast<int>(std::lround(255 * (1 - share)));
      char fill[16];
      std::snprintf(fill, sizeof fill, "#%02x%02xff", shade, shade);
      double x = left + cell * static_cast<double>(p), y = top + cell * static_cast<double>(e);
      svg += "<rect x=\"" + coordinate(x) + "\" y=\"" + coordinate(y) + "\" width=\"" +
             coordinate(cell) + "\" height=\"" + coordinate(cell) + "\" fill=\"" + fill +
             "\" stroke=\"#ccc\"/>\n";
      if (cell >= 24 && c > 0)
        svg += text(x + cell / 2, y + cell / 2 + 4, std::to_string(c), "middle",
                    share > 0.5 ? " fill=\"white\"" : "");
    }
    double y = top + cell * (static_cast<double>(e) + 0.5) + 4;
    svg += text(left - 6, y, classes[static_cast<size_t>(e)], "end");
    double x = left + cell * (static_cast<double>(e) + 0.5);
    svg += text(x, top + cell * static_cast<double>(k) + 8, classes[static_cast<size_t>(e)],
                "end",
                (" transform=\"rotate(-60 " + coordinate(x) + " " +
                 coordinate(top + cell * static_cast<double>(k) + 8) + ")\"")
                    .c_str());
  }
  svg += "</g>\n";
  svg += text(20, top + cell * static_cast<double>(k) / 2, "expected", "middle",
              (" transform=\"rotate(-90 20 " + coordinate(top + cell * static_cast<double>(k) / 2) +
               ")\"")
                  .c_str());
  svg += text(left + cell * static_cast<double>(k) / 2, height - 12, "predicted");
  return svg + "</svg>\n";
}

std::string predictionGrid(const std::vector<PlottedImage> &images, const std::string &title) {
  const int64_t columns = std::min<int64_t>(8, std::max<int64_t>(1, static_cast<int64_t>(images.size())));
  const int64_t rows = (static_cast<int64_t>(images.size()) + columns - 1) / columns;
  const double box = 112, label = 34;
  double width = 20 + static_cast<double>(columns) * (box + 12), height =
      50 + static_cast<double>(rows) * (box + label + 12);
  std::string svg = header(width, height, title);
  for (size_t i = 0; i < images.size(); ++i) {
    const PlottedImage &im = images[i];
    double x0 = 20 + static_cast<double>(static_cast<int64_t>(i) % columns) * (box + 12);
    double y0 = 44 + static_cast<double>(static_cast<int64_t>(i) / columns) * (box + label + 12);
    double px = box / static_cast<double>(std::max(im.width, im.height));
    auto [lo, hi] = std::minmax_element(im.pixels.begin(), im.pixels.end());
    double range = im.pixels.empty() || *hi - *lo <= 0 ? 1 : *hi - *lo;
    double base = im.pixels.empty() ? 0 : *lo;
    svg += "<g shape-rendering=\"crispEdges\">\n";
    // Rows of equal grey are one rectangle: a 28 x 28 digit is ~300, not 784.
    for (int64_t r = 0; r < im.height; ++r) {
      for (int64_t c = 0; c < im.width;) {
        auto grey = [&](int64_t col) {
          double v = (im.pixels[static_cast<size_t>(r * im.width + col)] - base) / range;
          return static_cast<int>(std::lround(255 * (1 - std::clamp(v, 0.0, 1.0))));
        };
        int g = grey(c);
        int64_t end = c + 1;
        while (end < im.width && grey(end) == g)
          ++end;
        char fill[16];
        std::snprintf(fill, sizeof fill, "#%02x%02x%02x", g, g, g);
        svg += "<rect x=\"" + coordinate(x0 + px * static_cast<double>(c)) + "\" y=\"" +
               coordinate(y0 + px * static_cast<double>(r)) + "\" width=\"" +
               coordinate(px * static_cast<double>(end - c)) + "\" height=\"" + coordinate(px) +
               "\" fill=\"" + fill + "\"/>\n";
        c = end;
      }
    }
    svg += "</g>\n";
    bool right = im.expected.empty() || im.predicted == im.expected;
    svg += text(x0 + box / 2, y0 + box + 15, im.predicted, "middle",
                right ? " font-weight=\"bold\"" : " font-weight=\"bold\" fill=\"#d62728\"");
    if (!im.expected.empty())
      svg += text(x0 + box / 2, y0 + box + 29,
                  (right ? "" : "expected ") + im.expected, "middle", " fill=\"#666\"");
  }
  return svg + "</svg>\n";
}

} // namespace netc::rt
