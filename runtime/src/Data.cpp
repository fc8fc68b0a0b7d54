// Data.cpp - data sources.
//   sine:  `points` values of x evenly spaced over [from, to] (computed as
//          torch.linspace does in float32), and y = sin(x); one batch.
//   mnist: IDX files; images stay uint8 until a batch is filled.
//   inline: scalars written in the .nn file, one example.
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

constexpr int64_t kPixels = 28 * 28;

} // namespace

FullBatch loadFullBatch(const ModelInfo &m) {
  if (m.dataSource == "inline") { // one example, each field a scalar
    FullBatch d;
    d.n = 1;
    for (const auto &f : m.fields)
      d.fields.push_back({static_cast<float>(m.option(f.name))});
    return d;
  }
  if (m.dataSource != "sine")
    throw Error("data source '" + m.dataSource + "' is not a single batch");
  auto points = static_cast<int64_t>(m.option("points"));
  std::vector<float> x = linspace(static_cast<float>(m.option("from")),
                                  static_cast<float>(m.option("to")), points);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = std::sin(x[i]);
  FullBatch d;
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

ImageSplits loadImageSplits(const ModelInfo &m, const std::string &dir) {
  auto classes = static_cast<int>(m.classes.size());
  // Looked up one by one, in this order, so the first missing file is the
  // one reported.
  std::string paths[4];
  const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
  for (int i = 0; i < 4; ++i)
    paths[i] = findIdxFile(dir, names[i]);
  ImageSplits s;
  s.train = loadLabeledImages(paths[0], paths[1], classes);
  s.test = loadLabeledImages(paths[2], paths[3], classes);
  for (const LabeledImages *split : {&s.train, &s.test})
    if (split->rows * split->cols != kPixels)
      throw Error("the images in '" + dir + "' are " + std::to_string(split->rows) + " x " +
                  std::to_string(split->cols) + "; this model takes 28 x 28");
  return s;
}

Batch::Batch(const ModelInfo &m, int64_t capacity)
    : pixels_(static_cast<size_t>(capacity * kPixels)), labels_(static_cast<size_t>(capacity)) {
  for (const auto &f : m.fields) {
    if (f.name == "image")
      pointers_.push_back(pixels_.data());
    else if (f.name == "label")
      pointers_.push_back(reinterpret_cast<const float *>(labels_.data()));
    else
      throw Error("data source 'mnist' has no field '" + f.name + "'");
  }
}

void Batch::fill(const LabeledImages &split, const int64_t *rows, int64_t n) {
  n_ = n;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t *src = split.pixels.data() + rows[i] * kPixels;
    float *dst = pixels_.data() + i * kPixels;
    for (int64_t p = 0; p < kPixels; ++p)
      dst[p] = static_cast<float>(src[p]) / 255.0f; // as torchvision's ToTensor
    labels_[static_cast<size_t>(i)] = split.labels[static_cast<size_t>(rows[i])];
  }
}

} // namespace netc::rt
