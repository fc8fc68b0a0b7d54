// Data.cpp - data sources.
//   sine:  `points` values of x evenly spaced over [from, to] (computed as
//          torch.linspace does in float32), and y = sin(x); one batch.
//   mnist: IDX files; images stay uint8 until a batch is filled.
//   inline: scalars written in the .nn file, one example.
//   tensors: named tensors of a safetensors file, one batch.
#include "Data.h"

#include "Safetensors.h"
#include "netc/runtime.h"

#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
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

namespace {

FullBatch sine(const ModelInfo &m) {
  auto points = static_cast<int64_t>(m.option("points"));
  std::vector<float> x =
      linspace(static_cast<float>(m.option("from")), static_cast<float>(m.option("to")), points);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = std::sin(x[i]);
  FullBatch d;
  d.n = points;
  for (const auto &f : m.fields) {
    if (f.name != "x" && f.name != "y")
      throw Error("data source 'sine' has no field '" + f.name + "'");
    d.floats.push_back(f.name == "x" ? x : y);
  }
  return d;
}

// Every declared field from the file: dtype and shape as declared, the
// batch dimension the same in all.
FullBatch tensors(const ModelInfo &m, const std::string &file) {
  auto all = readSafetensors(file);
  FullBatch d;
  d.n = -1;
  for (const auto &f : m.fields) {
    auto it = all.find(f.name);
    if (it == all.end())
      throw Error("'" + file + "' has no tensor '" + f.name + "'");
    LoadedTensor &t = it->second;
    bool integer = f.dtype == "i64";
    if (t.dtype != (integer ? "I64" : "F32"))
      throw Error("'" + file + "': tensor '" + f.name + "' is " + t.dtype +
                  ", the model declares " + f.dtype);
    bool fits = t.shape.size() == f.shape.size();
    for (size_t i = 0; fits && i < f.shape.size(); ++i) {
      if (f.shape[i] != kBatch) {
        fits = t.shape[i] == f.shape[i];
      } else if (d.n < 0 || d.n == t.shape[i]) {
        d.n = t.shape[i];
      } else {
        throw Error("'" + file + "': tensor '" + f.name + "' has " + std::to_string(t.shape[i]) +
                    " rows, the others " + std::to_string(d.n));
      }
    }
    if (!fits)
      throw Error("'" + file + "': tensor '" + f.name + "' has shape " +
                  TensorInfo{"", t.shape, 0}.shapeString() + ", the model declares " +
                  TensorInfo{"", f.shape, 0}.shapeString());
    if (integer) {
      // Class labels index the scores: each must name a class.
      int64_t classes = m.prediction.present ? m.prediction.classes : 0;
      for (size_t i = 0; i < t.ints.size(); ++i)
        if (t.ints[i] < 0 || t.ints[i] >= classes)
          throw Error("'" + file + "': label " + std::to_string(t.ints[i]) + " of item " +
                      std::to_string(i) + " of '" + f.name +
                      "' is not a class of this model (0 to " + std::to_string(classes - 1) + ")");
      d.ints.push_back(std::move(t.ints));
    } else
      d.floats.push_back(std::move(t.data));
  }
  if (d.n < 1)
    throw Error("'" + file + "': no tensor has the batch dimension N, or it is empty");
  return d;
}

} // namespace

FullBatch loadFullBatch(const ModelInfo &m, const std::string &file) {
  FullBatch d;
  if (m.dataSource == "inline") { // written in the .nn file
    d.n = m.batch;
    for (const auto &f : m.fields)
      for (const auto &[name, values] : m.inlineTensors)
        if (name == f.name)
          d.floats.push_back(values);
    if (d.floats.size() != m.fields.size())
      throw Error("the model description lacks inline data");
  } else if (m.dataSource == "sine") {
    d = sine(m);
  } else if (m.dataSource == "tensors") {
    d = tensors(m, file);
  } else {
    throw Error("data source '" + m.dataSource + "' is not a single batch");
  }
  // Pointers in declaration order; integer fields come from `ints`.
  size_t nf = 0, ni = 0;
  for (const auto &f : m.fields)
    d.inputs.push_back(f.dtype == "i64" ? reinterpret_cast<const float *>(d.ints[ni++].data())
                                        : d.floats[nf++].data());
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

namespace {

/// One fill, split into groups of examples for netc_rt_parallel_for.
struct FillJob {
  const LabeledImages *split;
  const int64_t *rows;
  int64_t n;
  float *pixels;
  int64_t *labels;
  static constexpr int64_t kGroup = 32; ///< examples per chunk
};

// value / 255 as torchvision's ToTensor computes it (a division: times
// 1/255 differs in the last bit for 126 of the 256 values), 16 pixels at a
// time with SSE2, which every x86-64 CPU has; the scalar loop elsewhere.
void scale(const uint8_t *src, float *dst, size_t count) {
  size_t p = 0;
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  const __m128 divisor = _mm_set1_ps(255.0f);
  for (; p + 16 <= count; p += 16) {
    __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + p));
    __m128i halves[2] = {_mm_unpacklo_epi8(bytes, zero), _mm_unpackhi_epi8(bytes, zero)};
    for (int h = 0; h < 2; ++h) {
      __m128i lo = _mm_unpacklo_epi16(halves[h], zero), hi = _mm_unpackhi_epi16(halves[h], zero);
      _mm_storeu_ps(dst + p + 8 * h, _mm_div_ps(_mm_cvtepi32_ps(lo), divisor));
      _mm_storeu_ps(dst + p + 8 * h + 4, _mm_div_ps(_mm_cvtepi32_ps(hi), divisor));
    }
  }
#endif
  // The rest (under 16 after SSE2), by pointers: GCC's loop analysis
  // warned about index overflow on the indexed form.
  for (const uint8_t *end = src + count, *s = src + p; s < end; ++s)
    dst[s - src] = static_cast<float>(*s) / 255.0f;
}

void fillChunk(const void *args, int64_t chunk) {
  const auto &job = *static_cast<const FillJob *>(args);
  const uint8_t *pixels = job.split->pixels.data();
  int64_t end = std::min(job.n, (chunk + 1) * FillJob::kGroup);
  for (int64_t i = chunk * FillJob::kGroup; i < end; ++i) {
    // Shuffled rows are scattered over the set: fetch a few ahead.
    if (i + 4 < end)
      for (int64_t line = 0; line < kPixels; line += 64)
        __builtin_prefetch(pixels + job.rows[i + 4] * kPixels + line);
    scale(pixels + job.rows[i] * kPixels, job.pixels + i * kPixels, static_cast<size_t>(kPixels));
    job.labels[i] = job.split->labels[static_cast<size_t>(job.rows[i])];
  }
}

} // namespace

void Batch::fill(const LabeledImages &split, const int64_t *rows, int64_t n) {
  n_ = n;
  FillJob job{&split, rows, n, pixels_.data(), labels_.data()};
  netc_rt_parallel_for(fillChunk, &job, (n + FillJob::kGroup - 1) / FillJob::kGroup);
}

} // namespace netc::rt
