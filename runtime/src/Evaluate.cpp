// Evaluate.cpp - evaluation, predictions and printed values: --eval, --predict,
// --predict-file, the test loss and accuracy after each epoch, `print` and
// the report line, and programs that only compute.
#include "Trainer.h"
#include "AtomicFile.h"
#include "Plot.h"

#include <algorithm>
#include <numeric>

namespace netc::rt {

namespace {

/// The values of an output of the forward pass that just ran on `batch`
/// (n examples); a constant output is written to `constant`.
const float *outputValues(const Session &s, const OutputLocation &at, const Batch &batch, int64_t n,
                          float &constant) {
  return valuesAt(at, s.scratch.get(), s.persist.get(), batch.inputs(), n, constant);
}

/// The class a row of the model's output picks.
int64_t predictedClass(const ModelInfo &m, const float *row) {
  if (m.prediction.binary())
    return row[0] > (m.prediction.kind == "logit" ? 0.0f : 0.5f) ? 1 : 0;
  return std::max_element(row, row + m.prediction.width) - row;
}

/// The expected class of example `i` of a batch.
int64_t expectedClass(const ModelInfo &m, const Batch &batch, int64_t i) {
  auto field = static_cast<size_t>(m.prediction.target);
  if (m.prediction.binary())
    return batch.floats(field)[i] > 0.5f ? 1 : 0;
  return batch.ints(field)[i];
}

bool classifies(const ModelInfo &m) {
  return m.prediction.present && m.prediction.target >= 0 &&
         (m.prediction.classifier() || m.prediction.binary());
}

/// The model's confidence in class `k` of a row of its output.
double confidence(const ModelInfo &m, const float *row, int64_t k) {
  const std::string &kind = m.prediction.kind;
  if (kind == "probability")
    return k == 1 ? row[0] : 1 - row[0];
  if (kind == "logit") {
    double p = 1 / (1 + std::exp(-static_cast<double>(row[0])));
    return k == 1 ? p : 1 - p;
  }
  if (kind == "probabilities")
    return row[k];
  if (kind == "log_probabilities")
    return std::exp(static_cast<double>(row[k]));
  int64_t classes = m.prediction.width;
  double max = *std::max_element(row, row + classes), sum = 0; // softmax of logits
  for (int64_t j = 0; j < classes; ++j)
    sum += std::exp(static_cast<double>(row[j]) - max);
  return std::exp(static_cast<double>(row[k]) - max) / sum;
}

/// Runs examples rows[0..count) of `data` in batches, in that order; calls
/// `visit(position, batch, i, output row)` for each; returns the mean loss
/// and, for classifiers, the accuracy.
template <typename Visit>
Evaluation evaluate(Session &s, const Dataset &data, Batch &batch, const int64_t *rows,
                    int64_t count, int64_t batchSize, Visit visit) {
  Evaluation e;
  int64_t correct = 0;
  int64_t width = s.m.prediction.width;
  for (int64_t begin = 0; begin < count; begin += batchSize) {
    int64_t n = std::min(batchSize, count - begin);
    batch.fill(data, rows + begin, n);
    float loss =
        s.m.code->forward(s.persist.get(), batch.inputs(), s.scratch.get(), n, s.hparams.data());
    e.loss += static_cast<double>(loss) * static_cast<double>(n);
    if (!s.m.prediction.present)
      continue;
    float constant;
    const float *out = outputValues(s, s.m.prediction.at, batch, n, constant);
    for (int64_t i = 0; i < n; ++i) {
      const float *row = out + i * width;
      if (classifies(s.m))
        correct += predictedClass(s.m, row) == expectedClass(s.m, batch, i);
      visit(begin + i, batch, i, row);
    }
  }
  e.loss /= static_cast<double>(std::max<int64_t>(count, 1));
  e.accuracy = static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(count, 1));
  return e;
}

/// A tensor as nested lists, PyTorch-like: [[1, 2], [3, 4]]; long
/// dimensions show their first and last three entries around "...".
void formatTensor(std::string &out, const float *v, const std::vector<int64_t> &shape, size_t dim) {
  if (dim == shape.size()) {
    out += shortest(*v);
    return;
  }
  int64_t stride = 1;
  for (size_t d = dim + 1; d < shape.size(); ++d)
    stride *= shape[d];
  int64_t n = shape[dim];
  out += '[';
  for (int64_t i = 0; i < n; ++i) {
    if (n > 8 && i == 3) {
      out += "..., ";
      i = n - 3;
    }
    formatTensor(out, v + i * stride, shape, dim + 1);
    if (i + 1 < n)
      out += ", ";
  }
  out += ']';
}

/// `text = value` for every print statement, after a forward pass over
/// `batch` (n examples).
void printValues(const Session &s, const Batch &batch, int64_t n) {
  std::vector<std::vector<float>> copies; // --print-file's tensors
  std::vector<TensorView> views;
  for (const PrintInfo &p : s.m.prints) {
    std::vector<int64_t> shape = p.at.shape;
    int64_t numel = 1;
    for (auto &d : shape) {
      d = d == kBatch ? n : d;
      numel *= d;
    }
    float constant;
    std::string text;
    const float *values = outputValues(s, p.at, batch, n, constant);
    formatTensor(text, values, shape, 0);
    std::printf("%s = %s\n", p.text.c_str(), text.c_str());
    if (!s.f.printFile.empty()) {
      copies.emplace_back(values, values + numel);
      views.push_back({p.text, shape, nullptr});
    }
  }
  if (s.f.printFile.empty())
    return;
  for (size_t i = 0; i < views.size(); ++i)
    views[i].data = copies[i].data();
  writeSafetensors(s.f.printFile, views, {});
}

/// A forward pass over the first examples of `data` (all of them, or a
/// batch for batched models), then the print statements' values.
/// The report line after a forward pass over `batch` (n examples).
void printReport(const Session &s, const Batch &batch, int64_t n) {
  if (s.m.report.empty())
    return;
  std::vector<float> computed;
  for (const ReportPiece &p : s.m.report) {
    float constant;
    if (p.computed)
      computed.push_back(*outputValues(s, p.at, batch, n, constant));
  }
  std::printf("%s\n", reportLine(s.m, s.persist.get(), computed).c_str());
}

/// A seeded sample of `count` of `size` examples, in order: spread over the
/// set, whatever order the set is in (sklearn's digits are sorted by class).
std::vector<int64_t> sample(int64_t size, int64_t count, uint64_t seed) {
  std::vector<int64_t> rows = firstRows(size);
  if (count >= size)
    return rows;
  for (int64_t i = 0; i < count; ++i) { // the first `count` of a Fisher-Yates shuffle
    float u = netc_rt_uniform(seed, 0x9e3d0000u, static_cast<uint64_t>(i));
    int64_t j =
        i + std::min<int64_t>(size - i - 1, static_cast<int64_t>(u * static_cast<float>(size - i)));
    std::swap(rows[static_cast<size_t>(i)], rows[static_cast<size_t>(j)]);
  }
  rows.resize(static_cast<size_t>(count));
  std::sort(rows.begin(), rows.end());
  return rows;
}

std::string values(const float *v, int64_t n) {
  std::string s;
  for (int64_t i = 0; i < n && i < 4; ++i)
    s += (i ? ", " : "") + shortest(v[i]);
  return n > 4 ? s + ", ..." : s;
}

/// A forward pass over the first min(size, data.size()) examples of
/// `data`, whose outputs print and report statements read.
struct FirstExamples {
  int64_t n;
  Batch batch;
  float loss;
  FirstExamples(Session &s, const Dataset &data, int64_t size)
      : n(std::min(size, data.size())), batch(data.fields(), n) {
    std::vector<int64_t> rows = firstRows(n);
    batch.fill(data, rows.data(), n);
    loss = s.m.code->forward(s.persist.get(), batch.inputs(), s.scratch.get(), n, s.hparams.data());
  }
};

} // namespace

std::string reportLine(const ModelInfo &m, const float *persist,
                       const std::vector<float> &computed) {
  std::string line;
  size_t next = 0;
  for (const auto &p : m.report) {
    if (p.computed)
      line += shortest(computed[next++]);
    else if (p.param < 0)
      line += p.text;
    else
      line += shortest(persist[m.params[static_cast<size_t>(p.param)].offset + p.offset]);
  }
  return line;
}

RunData openRunData(const ModelInfo &m, const std::string &path) {
  RunData d{openData(m, path), {}};
  nameClasses(m, d);
  return d;
}

void nameClasses(const ModelInfo &m, RunData &d) {
  d.classes = !d.splits.classes.empty() ? d.splits.classes : m.classes;
  int64_t count = m.prediction.binary() ? 2 : classCount(m);
  if (d.classes.empty() || static_cast<int64_t>(d.classes.size()) != count) {
    d.classes.clear();
    for (int64_t c = 0; c < count; ++c)
      d.classes.push_back(std::to_string(c));
  }
}

std::vector<int64_t> firstRows(int64_t count) {
  std::vector<int64_t> rows(static_cast<size_t>(count));
  std::iota(rows.begin(), rows.end(), 0);
  return rows;
}

Evaluation evaluate(Session &s, const Dataset &data, Batch &batch, int64_t batchSize) {
  std::vector<int64_t> rows = firstRows(data.size());
  return evaluate(s, data, batch, rows.data(), data.size(), batchSize,
                  [](int64_t, const Batch &, int64_t, const float *) {});
}

std::string evaluationText(const ModelInfo &m, const Evaluation &e, const char *set) {
  char buf[128];
  if (classifies(m))
    std::snprintf(buf, sizeof buf, "  %s loss %.4f  %s accuracy %.2f%%", set, e.loss, set,
                  100 * e.accuracy);
  else
    std::snprintf(buf, sizeof buf, "  %s loss %.4f", set, e.loss);
  return buf;
}

void writeEvaluation(const ModelInfo &m, nlohmann::json &record, const Evaluation &e) {
  record["test_loss"] = e.loss;
  if (classifies(m))
    record["test_accuracy"] = e.accuracy;
}

void finalOutputs(Session &s, const Dataset &data, int64_t size) {
  if (s.m.prints.empty() && s.m.report.empty())
    return;
  FirstExamples first(s, data, size);
  printValues(s, first.batch, first.n);
  printReport(s, first.batch, first.n);
}

int evaluateProgram(Session &s, const RunData &data) {
  const Dataset &set = *data.splits.train;
  FirstExamples first(s, set, batched(s.m) ? s.f.batch : set.size());
  if (s.m.lossGiven)
    std::printf("loss %s\n", shortest(first.loss).c_str());
  printValues(s, first.batch, first.n);
  printReport(s, first.batch, first.n);
  return 0;
}

int64_t evalBatch(const Session &s, const RunData &data) {
  return batched(s.m) ? s.f.batch : std::max<int64_t>(data.evalSet().size(), 1);
}

int evaluateOnly(Session &s, const RunData &data) {
  const Dataset &set = data.evalSet();
  int64_t size = evalBatch(s, data);
  Batch batch(set.fields(), size);
  auto classes = data.classes.size();
  std::vector<std::vector<int64_t>> confusion(classes, std::vector<int64_t>(classes));
  std::vector<int64_t> rows = firstRows(set.size());
  Evaluation e = evaluate(s, set, batch, rows.data(), set.size(), size,
                          [&](int64_t, const Batch &b, int64_t i, const float *row) {
                            if (!classifies(s.m))
                              return;
                            ++confusion[static_cast<size_t>(expectedClass(s.m, b, i))]
                                       [static_cast<size_t>(predictedClass(s.m, row))];
                          });
  std::printf("weights %s, %lld %s examples%s%s\n", s.f.init.c_str(),
              static_cast<long long>(set.size()), data.evalName(), s.f.data.empty() ? "" : " from ",
              s.f.data.c_str());
  if (classifies(s.m))
    std::printf("%s accuracy %.2f%%  %s loss %.4f\n", data.evalName(), 100 * e.accuracy,
                data.evalName(), e.loss);
  else
    std::printf("%s loss %.4f\n", data.evalName(), e.loss);
  nlohmann::json record = {{"event", "eval"}};
  writeEvaluation(s.m, record, e);
  s.metrics.write(record);
  if (!classifies(s.m))
    return 0;
  size_t width = 5;
  for (const auto &name : data.classes)
    width = std::max(width, name.size());
  std::printf("\nconfusion matrix (rows: true class, columns: predicted class)\n%*s",
              static_cast<int>(width + 4), "");
  for (size_t j = 0; j < classes; ++j)
    std::printf(" %5zu", j);
  std::printf("\n");
  for (size_t i = 0; i < classes; ++i) {
    std::printf("%2zu %-*s ", i, static_cast<int>(width), data.classes[i].c_str());
    for (size_t j = 0; j < classes; ++j)
      std::printf(" %5lld", static_cast<long long>(confusion[i][j]));
    std::printf("\n");
  }
  if (!s.f.plot.empty()) {
    std::vector<int64_t> counts;
    for (const auto &row : confusion)
      counts.insert(counts.end(), row.begin(), row.end());
    char title[128];
    std::snprintf(title, sizeof title, "model %s: %s accuracy %.2f%%", s.m.name.c_str(),
                  data.evalName(), 100 * e.accuracy);
    writePlot(s.f.plot, confusionPlot(data.classes, counts, title));
  }
  return 0;
}

namespace {

/// The input field an image grid shows: one whose examples are [C, H, W]
/// or [H, W] of floats (the first channel drawn), or -1.
int imageField(const ModelInfo &m) {
  for (size_t k = 0; k < m.fields.size(); ++k) {
    const FieldInfo &f = m.fields[k];
    size_t rank = f.shape.size();
    if (f.role == "input" && f.dtype == "f32" && rank >= 3 && f.shape[0] == kBatch &&
        (rank == 3 || (rank == 4 && f.shape[1] <= 4)) && f.shape[rank - 1] > 1 &&
        f.shape[rank - 2] > 1)
      return static_cast<int>(k);
  }
  return -1;
}

} // namespace

void writePlot(const std::string &path, const std::string &svg) {
  writeFileAtomically(path, [&](int fd) { writeAll(fd, svg.data(), svg.size(), path); });
  std::printf("plot written to %s\n", path.c_str());
}

int predictOnly(Session &s, const RunData &data) {
  const Dataset &set = data.evalSet();
  int64_t size = evalBatch(s, data);
  Batch batch(set.fields(), size);
  std::vector<int64_t> rows = sample(set.size(), s.f.predict, s.f.seed);
  auto count = static_cast<int64_t>(rows.size());
  bool classes = classifies(s.m);
  std::printf("%lld of the %lld %s examples (drawn with seed %llu)\n",
              static_cast<long long>(count), static_cast<long long>(set.size()), data.evalName(),
              static_cast<unsigned long long>(s.f.seed));
  // Small inputs (a few numbers, not an image) are shown beside the answer.
  int input = -1;
  for (size_t k = 0; k < set.fields().size(); ++k)
    if (set.fields()[k].role == "input" && !set.fields()[k].integer && input < 0 &&
        set.fields()[k].numel <= 4)
      input = static_cast<int>(k);
  // Named examples (clips) show their names instead.
  bool named = count > 0 && !set.name(rows[0]).empty();
  if (named)
    input = -1;
  auto inputText = [&](const Batch &b, int64_t i, int64_t row) {
    if (named) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%-18s ", set.name(row).c_str());
      return std::string(buf);
    }
    if (input < 0)
      return std::string();
    int64_t w = set.fields()[static_cast<size_t>(input)].numel;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%-18s ",
                  values(b.floats(static_cast<size_t>(input)) + i * w, w).c_str());
    return std::string(buf);
  };
  std::string inputHead = named ? std::string("example            ") : std::string();
  if (input >= 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%-18s ", set.fields()[static_cast<size_t>(input)].name.c_str());
    inputHead = buf;
  }
  if (classes)
    std::printf("%6s  %s%-14s %-14s %s\n", "#", inputHead.c_str(), "predicted", "expected",
                "confidence");
  else
    std::printf("%6s  %s%-24s %s\n", "#", inputHead.c_str(), "predicted",
                s.m.prediction.target >= 0 ? "expected" : "");
  // --plot: the sampled images with their answers.
  int image = s.f.plot.empty() ? -1 : imageField(s.m);
  if (!s.f.plot.empty() && image < 0)
    throw Error("--plot with --predict draws image inputs ([N, C, H, W] or [N, H, W]); this "
                "model's inputs are not images");
  std::vector<PlottedImage> images;
  auto keepImage = [&](const Batch &b, int64_t i, int64_t row, const std::string &predicted,
                       const std::string &expected) {
    if (image < 0)
      return;
    const std::vector<int64_t> &shape = s.m.fields[static_cast<size_t>(image)].shape;
    PlottedImage im{shape[shape.size() - 2], shape.back(), {}, predicted, expected, set.name(row)};
    int64_t numel = 1;
    for (size_t d = 1; d < shape.size(); ++d)
      numel *= shape[d];
    // Batch fields are laid out by the dataset's field index: the model's.
    const float *x = b.floats(static_cast<size_t>(image)) + i * numel;
    im.pixels.assign(x, x + im.height * im.width);
    images.push_back(std::move(im));
  };
  Evaluation e = evaluate(
      s, set, batch, rows.data(), count, size,
      [&](int64_t position, const Batch &b, int64_t i, const float *row) {
        auto index = static_cast<long long>(rows[static_cast<size_t>(position)]);
        std::string in = inputText(b, i, index);
        if (classes) {
          int64_t best = predictedClass(s.m, row), label = expectedClass(s.m, b, i);
          keepImage(b, i, index, data.classes[static_cast<size_t>(best)],
                    data.classes[static_cast<size_t>(label)]);
          std::printf("%6lld  %s%-14s %-14s %6.2f%%%s\n", index, in.c_str(),
                      data.classes[static_cast<size_t>(best)].c_str(),
                      data.classes[static_cast<size_t>(label)].c_str(),
                      100 * confidence(s.m, row, best), best == label ? "" : "  (wrong)");
          return;
        }
        int64_t width = s.m.prediction.width;
        std::string expected =
            s.m.prediction.target >= 0
                ? values(b.floats(static_cast<size_t>(s.m.prediction.target)) + i * width, width)
                : "";
        std::printf("%6lld  %s%-24s %s\n", index, in.c_str(), values(row, width).c_str(),
                    expected.c_str());
        keepImage(b, i, index, values(row, width), expected);
      });
  if (classes)
    std::printf("%.2f%% of these %lld correct\n", 100 * e.accuracy, static_cast<long long>(count));
  else if (s.m.prediction.target >= 0)
    std::printf("loss over these %lld: %.4f\n", static_cast<long long>(count), e.loss);
  if (image >= 0) {
    char title[128];
    std::snprintf(title, sizeof title, "model %s: %lld %s examples (seed %llu)", s.m.name.c_str(),
                  static_cast<long long>(count), data.evalName(),
                  static_cast<unsigned long long>(s.f.seed));
    writePlot(s.f.plot, predictionGrid(images, title));
  }
  return 0;
}

namespace {
/// `text` as one CSV field: quoted when it holds a comma, quote or newline.
std::string csvField(const std::string &text) {
  if (text.find_first_of(",\"\n") == std::string::npos)
    return text;
  std::string out = "\"";
  for (char c : text)
    out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}
} // namespace

int predictFile(Session &s, const RunData &data, int64_t capacity) {
  auto inputs = openInputs(s.m, s.f.predictFile);
  int64_t width = s.m.prediction.width;
  int64_t size = std::min(capacity, std::max<int64_t>(inputs->size(), 1));
  Batch batch(inputs->fields(), size);
  std::vector<float> out(static_cast<size_t>(size * width));
  // One pointer per field of the model; predict reads the inputs only.
  std::vector<const float *> pointers(s.m.fields.size(), nullptr);
  bool classes = s.m.prediction.classifier() || s.m.prediction.binary();
  // Named inputs (clips) are listed by name, quoted as CSV quotes.
  bool named = inputs->size() > 0 && !inputs->name(0).empty();
  const char *first = named ? "file" : "row";
  if (classes) {
    std::printf("%s,predicted,confidence\n", first);
  } else {
    std::printf("%s", first);
    for (int64_t k = 0; k < width; ++k)
      std::printf(width == 1 ? ",predicted" : ",predicted_%lld", static_cast<long long>(k));
    std::printf("\n");
  }
  std::vector<int64_t> rows = firstRows(inputs->size());
  for (int64_t begin = 0; begin < inputs->size(); begin += size) {
    int64_t n = std::min(size, inputs->size() - begin);
    batch.fill(*inputs, rows.data() + begin, n);
    for (size_t f = 0, k = 0; f < s.m.fields.size(); ++f)
      if (s.m.fields[f].role == "input")
        pointers[f] = batch.floats(k++);
    s.m.code->predict(s.persist.get(), pointers.data(), s.scratch.get(), n, out.data());
    for (int64_t i = 0; i < n; ++i) {
      const float *row = out.data() + i * width;
      if (named)
        std::printf("%s", csvField(inputs->name(begin + i)).c_str());
      else
        std::printf("%lld", static_cast<long long>(begin + i));
      if (classes) {
        int64_t best = predictedClass(s.m, row);
        std::printf(",%s,%.6f\n", data.classes[static_cast<size_t>(best)].c_str(),
                    confidence(s.m, row, best));
        continue;
      }
      for (int64_t k = 0; k < width; ++k)
        std::printf(",%s", shortest(row[k]).c_str());
      std::printf("\n");
    }
  }
  return 0;
}

} // namespace netc::rt
