// Data.cpp - data sources. `sine`: `points` values of x evenly spaced over
// [from, to] (computed as torch.linspace does in float32), and y = sin(x).
#include "Data.h"

#include <cmath>

namespace netc::rt {

namespace {

std::vector<float> linspace(float from, float to, int64_t steps) {
  std::vector<float> x(static_cast<size_t>(steps));
  float step = (to - from) / static_cast<float>(steps - 1);
  int64_t half = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    x[static_cast<size_t>(i)] = i < half ? from + step * static_cast<float>(i)
                                         : to - step * static_cast<float>(steps - i - 1);
  return x;
}

Dataset sine(const ModelInfo &m) {
  auto points = static_cast<int64_t>(m.option("points"));
  std::vector<float> x = linspace(static_cast<float>(m.option("from")),
                                  static_cast<float>(m.option("to")), points);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = std::sin(x[i]);
  Dataset d;
  d.n = points;
  for (const auto &f : m.fields) {
    if (f.name == "x")
      d.fields.push_back(x);
    else if (f.name == "y")
      d.fields.push_back(y);
    else
      throw Error("data source 'sine' has no field '" + f.name + "'");
  }
  return d;
}

} // namespace

Dataset loadData(const ModelInfo &m) {
  if (m.dataSource == "sine")
    return sine(m);
  throw Error("unknown data source '" + m.dataSource + "'");
}

} // namespace netc::rt
