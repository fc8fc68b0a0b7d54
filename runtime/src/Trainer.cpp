// Trainer.cpp - netc_main: a model's program's flags, training loops,
// progress, evaluation, metrics, weights and report line.
//
// Every data source is a Dataset (data/Dataset.h); the trainer never knows
// which. Two loops: a model without a batch size trains on the whole set at
// once for --steps steps; a model with one trains in epochs of shuffled
// batches. Both evaluate on the test examples when there are any.
#include "Cpu.h"
#include "GradCheck.h"
#include "ModelInfo.h"
#include "Safetensors.h"
#include "ThreadPool.h"
#include "data/Sources.h"
#include "netc/runtime.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <unistd.h>

namespace netc::rt {

namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  int64_t steps = 0;
  int64_t epochs = 0;
  double lr = 0;
  uint64_t seed = 0;
  std::string init;
  std::string save;
  std::string metrics;
  std::string data;
  int64_t batch = 0;
  bool noShuffle = false;
  bool stepsGiven = false;
  bool eval = false;
  int64_t predict = 0;
  std::string predictFile;
  std::string checkpoint;
  std::string resume;
  int64_t gradStats = 0; ///< every K steps; 0: off
  int64_t gradCheck = 0; ///< entries per tensor; 0: off
  int64_t threads = 1;
};

/// Set by SIGINT: the loop stops after the current step and checkpoints.
volatile std::sig_atomic_t interrupted = 0;
extern "C" void onInterrupt(int) { interrupted = 1; }

/// Shortest text that reads back as the same float.
std::string shortest(float v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

struct AlignedFree {
  void operator()(void *p) const { std::free(p); }
};
template <typename T> using Aligned = std::unique_ptr<T[], AlignedFree>;

template <typename T> Aligned<T> allocate(size_t count) {
  size_t bytes = (std::max<size_t>(count * sizeof(T), 64) + 63) / 64 * 64;
  void *p = std::aligned_alloc(64, bytes);
  if (!p)
    throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, bytes);
  return Aligned<T>(static_cast<T *>(p));
}

std::string programName(const char *argv0) {
  std::string s = argv0 ? argv0 : "train";
  size_t slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

// Validators with messages that say what is wanted (CLI11's own print the
// whole range of a double).
CLI::Validator wholeNumber(uint64_t min = 0) {
  return CLI::Validator(
      [min](std::string &text) -> std::string {
        uint64_t v = 0;
        auto r = std::from_chars(text.data(), text.data() + text.size(), v);
        if (r.ec != std::errc() || r.ptr != text.data() + text.size() || v > (uint64_t(1) << 62) ||
            v < min)
          return "expected a whole number >= " + std::to_string(min) + ", got '" + text + "'";
        return {};
      },
      "");
}

CLI::Validator positiveNumber() {
  return CLI::Validator(
      [](std::string &text) -> std::string {
        char *end = nullptr;
        double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v))
          return "expected a positive number, got '" + text + "'";
        return {};
      },
      "");
}

/// Fails now, not after training, if the weights cannot be written there.
void checkWritable(const std::string &path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1));
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error("cannot write the weights to '" + path + "': " + std::strerror(errno));
}

/// Trains in epochs of batches (else: the whole set each step).
bool batched(const ModelInfo &m) { return m.batch > 0; }

/// Edit distance (insertions, deletions, substitutions) of two short words.
size_t editDistance(const std::string &a, const std::string &b) {
  std::vector<size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

/// The program's flag closest to the first unknown "--flag" of the command
/// line (a typo such as --epoch), or "" if none is close.
std::string closestFlag(const CLI::App &app, int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0)
      continue;
    arg = arg.substr(2, arg.find('=') == std::string::npos ? std::string::npos : arg.find('=') - 2);
    bool known = false;
    std::string best;
    size_t bestDistance = std::max<size_t>(2, arg.size() / 3) + 1;
    for (const CLI::Option *o : app.get_options()) {
      for (const std::string &name : o->get_lnames()) {
        known = known || name == arg;
        size_t d = editDistance(arg, name);
        if (d < bestDistance) {
          bestDistance = d;
          best = "--" + name;
        }
      }
    }
    if (!known)
      return best;
  }
  return {};
}

/// Parses the flags; returns false (with the exit code in `exitCode`) when the
/// program should stop, e.g. after --help or a bad flag.
bool parseFlags(int argc, char **argv, const ModelInfo &m, Flags &f, int &exitCode) {
  std::string name = programName(argc > 0 ? argv[0] : nullptr);
  CLI::App app{"Trains the model '" + m.name + "' compiled by netc."};
  app.name(name);
  f.steps = m.steps;
  f.epochs = m.epochs > 0 ? m.epochs : 1;
  f.lr = m.lr;
  f.seed = m.seed;
  f.save = name + ".safetensors";
  f.data = m.dataPath;
  f.batch = m.batch;
  // More threads than chunks would have nothing to do.
  f.threads = std::min<int64_t>(availableCores(), std::max<int64_t>(m.maxChunks, 1));
  auto *steps = app.add_option("--steps", f.steps, "total training steps")->check(wholeNumber());
  app.add_option("--lr", f.lr, "learning rate")->check(positiveNumber())->capture_default_str();
  app.add_option("--seed", f.seed, "seed for initialisation and shuffling")
      ->check(wholeNumber())
      ->capture_default_str();
  app.add_option("--init", f.init, "load the parameters from this safetensors weights file")
      ->check(CLI::ExistingFile);
  app.add_option("--save", f.save, "where to write the trained weights (safetensors)")
      ->capture_default_str();
  app.add_option("--metrics", f.metrics, "append JSON Lines progress records to this file");
  app.add_option("--threads", f.threads,
                 "threads for the big kernels (default: the cores this process may use, "
                 "at most the model's largest chunk count); results are the same bits "
                 "for every count")
      ->check(CLI::Range(int64_t(1), int64_t(kMaxThreads)))
      ->capture_default_str();
  auto *stats = app.add_option("--grad-stats", f.gradStats,
                               "every K steps (default: the report interval), print the norm "
                               "of each parameter's gradient and of its update")
                    ->expected(0, 1)
                    ->check(wholeNumber(1));
  auto *check = app.add_option("--gradcheck", f.gradCheck,
                               "no training: check the compiled gradients on K random entries "
                               "per parameter (default 20) against finite differences and a "
                               "double-precision twin")
                    ->expected(0, 1)
                    ->check(wholeNumber(1));
  if (!m.dataPath.empty())
    app.add_option("--data", f.data,
                   m.dataSource == "idx" || m.dataSource == "mnist"
                       ? "the folder with the IDX files"
                       : "the data file")
        ->capture_default_str();
  CLI::Option *epochs = nullptr;
  if (batched(m)) {
    epochs = app.add_option("--epochs", f.epochs, "total passes over the training data")
                 ->check(wholeNumber(1))
                 ->capture_default_str();
    epochs->excludes(steps);
    app.add_option("--batch", f.batch, "batch size")->check(wholeNumber(1))->capture_default_str();
    app.add_flag("--no-shuffle", f.noShuffle, "batches in file order");
    f.checkpoint = name + ".ckpt.safetensors";
    app.add_option("--checkpoint", f.checkpoint,
                   "training checkpoint, written after every epoch and on Ctrl-C")
        ->capture_default_str();
    app.add_option("--resume", f.resume, "continue the run saved in this checkpoint")
        ->check(CLI::ExistingFile)
        ->excludes("--init");
  } else {
    steps->capture_default_str();
  }
  if (m.prediction.present) {
    auto *eval = app.add_flag("--eval", f.eval,
                              "no training: load the weights (--init FILE, else the --save "
                              "path) and evaluate them on the test examples");
    auto *predict = app.add_option("--predict", f.predict,
                                   "no training: load the weights as --eval does and show the "
                                   "model's answers for N test examples (a seeded sample)")
                        ->check(wholeNumber(1));
    auto *file = app.add_option("--predict-file", f.predictFile,
                                "no training: load the weights as --eval does and print the "
                                "model's answers for the inputs in FILE (the data's format) as CSV")
                     ->check(CLI::ExistingFile);
    for (auto *o : {eval, predict, file}) {
      o->excludes(steps);
      if (epochs)
        o->excludes(epochs);
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0) {
      exitCode = app.exit(e);
      return false;
    }
    std::cerr << "error: " << e.what() << "\n";
    if (std::string flag = closestFlag(app, argc, argv); !flag.empty())
      std::cerr << "note: did you mean '" << flag << "'?\n";
    std::cerr << "(run '" << name << " --help' for usage)\n";
    exitCode = 1;
    return false;
  }
  f.stepsGiven = steps->count() > 0;
  if (check->count() > 0 && f.gradCheck == 0)
    f.gradCheck = 20;
  if (stats->count() > 0 && f.gradStats == 0)
    f.gradStats = m.reportEvery;
  if (f.eval || f.predict || !f.predictFile.empty()) {
    // Evaluation reads the weights: --init, else what training saved.
    if (f.init.empty())
      f.init = f.save;
    if (::access(f.init.c_str(), R_OK) != 0)
      throw Error("no weights to evaluate: '" + f.init + "' cannot be read (" +
                  std::strerror(errno) + "); train first or give --init FILE");
    return true;
  }
  if (f.batch > 65536)
    throw Error("--batch: at most 65536");
  checkWritable(f.save);
  if (!f.checkpoint.empty())
    checkWritable(f.checkpoint);
  return true;
}

class MetricsLog {
public:
  explicit MetricsLog(const std::string &path) {
    if (path.empty())
      return;
    out_.open(path, std::ios::app);
    if (!out_)
      throw Error("cannot open the metrics file '" + path + "': " + std::strerror(errno));
  }
  void write(const nlohmann::json &record) {
    if (!out_.is_open())
      return;
    out_ << record.dump() << '\n';
    out_.flush();
  }

private:
  std::ofstream out_;
};

/// The report line; `computed` holds the values of its expressions, in order.
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

/// State shared by both training loops.
struct Session {
  const ModelInfo &m;
  Flags f;
  Aligned<float> persist;
  Aligned<char> scratch;
  std::vector<float> hparams;
  MetricsLog metrics;
  Clock::time_point start = Clock::now();

  Session(const ModelInfo &model, Flags flags, int64_t maxBatch)
      : m(model), f(std::move(flags)),
        persist(allocate<float>(static_cast<size_t>(model.persistentFloats))),
        scratch(allocate<char>(static_cast<size_t>(
            model.scratchFixedBytes + model.scratchBatchBytesPerN * paddedBatch(maxBatch)))),
        metrics(f.metrics) {
    m.code->init(persist.get(), f.seed);
    if (!f.init.empty())
      loadWeights(m, f.init, persist.get());
    hparams = {static_cast<float>(f.lr)};
    hparams.resize(1 + m.stepHParams.size(), 1.0f);
  }

  double seconds() const { return std::chrono::duration<double>(Clock::now() - start).count(); }

  /// One training step (1-based `step`); false if the loss diverged.
  bool train(int64_t step, const float *const *inputs, int64_t n, float &loss) {
    // Step-dependent hyperparameters (Adam's bias corrections), in double.
    for (size_t i = 0; i < m.stepHParams.size(); ++i) {
      const auto &h = m.stepHParams[i];
      hparams[1 + i] =
          static_cast<float>(1.0 - std::pow(h.base, static_cast<double>(step + h.offset)));
    }
    bool stats = f.gradStats > 0 && step % f.gradStats == 0;
    if (stats)
      gradientsBefore(inputs, n);
    loss = m.code->train_step(persist.get(), inputs, scratch.get(), n, hparams.data());
    if (stats && std::isfinite(loss))
      printGradStats(step);
    if (std::isfinite(loss))
      return true;
    std::fprintf(stderr,
                 "error: the loss became %s at step %lld; training stopped.\n"
                 "The weights file was not written. Try a smaller learning rate (--lr).\n",
                 std::isnan(loss) ? "nan" : "infinite", static_cast<long long>(step));
    return false;
  }

  void announce(const std::string &length) const {
    long long count = 0;
    for (const auto &p : m.params)
      count += p.numel();
    std::printf("training %s: %s, %s, lr %g, %s, %lld thread%s\n", m.name.c_str(),
                counted(count, "parameter").c_str(), m.optimizer.c_str(), f.lr, length.c_str(), static_cast<long long>(f.threads),
                f.threads == 1 ? "" : "s");
  }

  void save() const { saveWeights(m, f.save, persist.get()); }

  // --grad-stats: the raw gradients (the gradients entry point) and the parameters
  // before the step; their change after it is the update.
  std::vector<float> grads, before;

  void gradientsBefore(const float *const *inputs, int64_t n) {
    grads.assign(static_cast<size_t>(m.persistentFloats), 0.0f);
    before.assign(persist.get(), persist.get() + m.persistentFloats);
    m.code->gradients(persist.get(), inputs, scratch.get(), n, hparams.data(), grads.data());
  }

  void printGradStats(int64_t step) {
    size_t width = 4;
    for (const auto &p : m.params)
      width = std::max(width, p.name.size());
    std::printf("step %lld: gradient and update norms\n", static_cast<long long>(step));
    nlohmann::json gradNorms, updateNorms;
    for (const auto &p : m.params) {
      double g2 = 0, u2 = 0;
      for (int64_t i = 0; i < p.numel(); ++i) {
        auto k = static_cast<size_t>(p.offset + i);
        g2 += static_cast<double>(grads[k]) * grads[k];
        double u = static_cast<double>(persist[p.offset + i]) - before[k];
        u2 += u * u;
      }
      std::printf("  %-*s  |grad| %.3e  |update| %.3e\n", static_cast<int>(width), p.name.c_str(),
                  std::sqrt(g2), std::sqrt(u2));
      gradNorms[p.name] = std::sqrt(g2);
      updateNorms[p.name] = std::sqrt(u2);
    }
    metrics.write({{"event", "grad_stats"},
                   {"step", step},
                   {"grad_norms", gradNorms},
                   {"update_norms", updateNorms}});
  }
};

// ---- evaluation ----------------------------------------------------------------

/// The data of a run and what evaluation needs to know about it.
struct RunData {
  Splits splits;
  std::vector<std::string> classes; ///< names by label (classifiers)
  /// Evaluation's examples: the test set, else the training set.
  const Dataset &evalSet() const { return splits.test ? *splits.test : *splits.train; }
  const char *evalName() const { return splits.test ? "test" : "training"; }
};

RunData openRunData(const ModelInfo &m, const std::string &path) {
  RunData d{openData(m, path), {}};
  d.classes = !d.splits.classes.empty() ? d.splits.classes : m.classes;
  int64_t count = m.prediction.binary() ? 2 : classCount(m);
  if (d.classes.empty() || static_cast<int64_t>(d.classes.size()) != count) {
    d.classes.clear();
    for (int64_t c = 0; c < count; ++c)
      d.classes.push_back(std::to_string(c));
  }
  return d;
}

/// The values of an output of the forward pass that just ran on `batch`
/// (n examples); a constant output is written to `constant`.
const float *outputValues(const Session &s, const OutputLocation &at, const Batch &batch,
                          int64_t n, float &constant) {
  if (at.region == "scratch")
    return reinterpret_cast<const float *>(s.scratch.get() + at.fixedBytes +
                                           at.perNpadBytes * paddedBatch(n));
  if (at.region == "persist")
    return s.persist.get() + at.offset;
  if (at.region == "input")
    return batch.floats(static_cast<size_t>(at.field));
  constant = static_cast<float>(at.value);
  return &constant;
}

struct Evaluation {
  double loss = 0;
  double accuracy = 0;
};

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

std::vector<int64_t> firstRows(int64_t count) {
  std::vector<int64_t> rows(static_cast<size_t>(count));
  std::iota(rows.begin(), rows.end(), 0);
  return rows;
}

/// All of `data`, in order.
Evaluation evaluate(Session &s, const Dataset &data, Batch &batch, int64_t batchSize) {
  std::vector<int64_t> rows = firstRows(data.size());
  return evaluate(s, data, batch, rows.data(), data.size(), batchSize,
                  [](int64_t, const Batch &, int64_t, const float *) {});
}

/// " test loss 0.1234  test accuracy 93.46%" (accuracy for classifiers).
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

// ---- print ----------------------------------------------------------------------

/// A tensor as nested lists, PyTorch-like: [[1, 2], [3, 4]]; long
/// dimensions show their first and last three entries around "...".
void formatTensor(std::string &out, const float *v, const std::vector<int64_t> &shape,
                  size_t dim) {
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
  for (const PrintInfo &p : s.m.prints) {
    std::vector<int64_t> shape = p.at.shape;
    for (auto &d : shape)
      d = d == kBatch ? n : d;
    float constant;
    std::string text;
    formatTensor(text, outputValues(s, p.at, batch, n, constant), shape, 0);
    std::printf("%s = %s\n", p.text.c_str(), text.c_str());
  }
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

/// After training: the print statements and the report line, from a
/// forward pass over the first examples of `data` (all of them, or a batch
/// for batched models).
void finalOutputs(Session &s, const Dataset &data, int64_t size) {
  if (s.m.prints.empty() && s.m.report.empty())
    return;
  int64_t n = std::min(size, data.size());
  Batch batch(data.fields(), n);
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  batch.fill(data, rows.data(), n);
  s.m.code->forward(s.persist.get(), batch.inputs(), s.scratch.get(), n, s.hparams.data());
  printValues(s, batch, n);
  printReport(s, batch, n);
}

/// A program with nothing to train: the loss (if it has one), its print
/// statements and its report line, on its data.
int evaluateProgram(Session &s, const RunData &data) {
  const Dataset &set = *data.splits.train;
  int64_t n = batched(s.m) ? std::min(s.f.batch, set.size()) : set.size();
  Batch batch(set.fields(), n);
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  batch.fill(set, rows.data(), n);
  float loss =
      s.m.code->forward(s.persist.get(), batch.inputs(), s.scratch.get(), n, s.hparams.data());
  if (s.m.lossGiven)
    std::printf("loss %s\n", shortest(loss).c_str());
  printValues(s, batch, n);
  printReport(s, batch, n);
  return 0;
}

// ---- one batch: the whole set each step --------------------------------------

int trainFullBatch(Session &s, const RunData &data) {
  const Dataset &train = *data.splits.train;
  int64_t n = train.size();
  Batch batch(train.fields(), n);
  std::vector<int64_t> rows = firstRows(n);
  batch.fill(train, rows.data(), n);
  std::unique_ptr<Batch> testBatch;
  if (data.splits.test)
    testBatch = std::make_unique<Batch>(train.fields(), data.splits.test->size());
  s.announce(counted(s.f.steps, "step") +
             (data.splits.test ? " (" + data.splits.description + ")" : std::string()));
  int width = static_cast<int>(std::to_string(s.f.steps).size());
  for (int64_t step = 1; step <= s.f.steps; ++step) {
    float loss;
    if (!s.train(step, batch.inputs(), n, loss))
      return 1;
    if (interrupted) {
      s.save();
      std::printf("\ninterrupted at step %lld; weights saved to %s\n", static_cast<long long>(step),
                  s.f.save.c_str());
      return 130;
    }
    if (step % s.m.reportEvery == 0 || step == s.f.steps) {
      double seconds = s.seconds();
      nlohmann::json record = {
          {"event", "report"}, {"step", step}, {"loss", loss}, {"seconds", seconds}};
      std::string test;
      if (testBatch) {
        Evaluation e = evaluate(s, *data.splits.test, *testBatch, data.splits.test->size());
        test = evaluationText(s.m, e, "test");
        writeEvaluation(s.m, record, e);
      }
      std::printf("step %*lld/%lld  loss %s%s\n", width, static_cast<long long>(step),
                  static_cast<long long>(s.f.steps), shortest(loss).c_str(), test.c_str());
      std::fflush(stdout);
      s.metrics.write(record);
    }
  }
  float finalLoss =
      s.m.code->forward(s.persist.get(), batch.inputs(), s.scratch.get(), n, s.hparams.data());
  if (!std::isfinite(finalLoss)) {
    std::fprintf(stderr,
                 "error: the final loss is not finite; the weights file was not written.\n");
    return 1;
  }
  std::printf("final loss %s\n", shortest(finalLoss).c_str());
  s.save();
  std::printf("weights saved to %s\n", s.f.save.c_str());
  finalOutputs(s, train, n);
  return 0;
}

// ---- epochs of batches ---------------------------------------------------------

/// The order of the training examples in `epoch`: a permutation derived from
/// the seed and the epoch number alone (Fisher-Yates over a counter-based
/// generator), or file order.
std::vector<int64_t> epochOrder(int64_t count, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int64_t> order = firstRows(count);
  if (!shuffle)
    return order;
  for (int64_t i = count - 1; i > 0; --i) {
    float u =
        netc_rt_uniform(seed, 0x5eed0000u + static_cast<uint64_t>(epoch), static_cast<uint64_t>(i));
    auto j = std::min<int64_t>(i, static_cast<int64_t>(u * static_cast<float>(i + 1)));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

/// The examples evaluation runs in one batch: the batch size, or the whole
/// evaluation set for a model trained on the whole set at once.
int64_t evalBatch(const Session &s, const RunData &data) {
  return batched(s.m) ? s.f.batch : std::max<int64_t>(data.evalSet().size(), 1);
}

/// --eval: loss, and for classifiers accuracy and the confusion matrix.
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
              static_cast<long long>(set.size()), data.evalName(),
              s.f.data.empty() ? "" : " from ", s.f.data.c_str());
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
  return 0;
}

/// A seeded sample of `count` of `size` examples, in order: spread over the
/// set, whatever order the set is in (sklearn's digits are sorted by class).
std::vector<int64_t> sample(int64_t size, int64_t count, uint64_t seed) {
  std::vector<int64_t> rows = firstRows(size);
  if (count >= size)
    return rows;
  for (int64_t i = 0; i < count; ++i) { // the first `count` of a Fisher-Yates shuffle
    float u = netc_rt_uniform(seed, 0x9e3d0000u, static_cast<uint64_t>(i));
    int64_t j = i + std::min<int64_t>(size - i - 1,
                                      static_cast<int64_t>(u * static_cast<float>(size - i)));
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

/// --predict N: N examples of the evaluation set (a sample drawn with
/// --seed), the model's answer beside the expected one.
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
  auto inputText = [&](const Batch &b, int64_t i) {
    if (input < 0)
      return std::string();
    int64_t w = set.fields()[static_cast<size_t>(input)].numel;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%-18s ",
                  values(b.floats(static_cast<size_t>(input)) + i * w, w).c_str());
    return std::string(buf);
  };
  std::string inputHead;
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
  Evaluation e = evaluate(
      s, set, batch, rows.data(), count, size,
      [&](int64_t position, const Batch &b, int64_t i, const float *row) {
        auto index = static_cast<long long>(rows[static_cast<size_t>(position)]);
        std::string in = inputText(b, i);
        if (classes) {
          int64_t best = predictedClass(s.m, row), label = expectedClass(s.m, b, i);
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
      });
  if (classes)
    std::printf("%.2f%% of these %lld correct\n", 100 * e.accuracy, static_cast<long long>(count));
  else if (s.m.prediction.target >= 0)
    std::printf("loss over these %lld: %.4f\n", static_cast<long long>(count), e.loss);
  return 0;
}

int trainEpochs(Session &s, const RunData &data) {
  const Dataset &train = *data.splits.train;
  Batch batch(train.fields(), s.f.batch);
  int64_t count = train.size();
  int64_t perEpoch = (count + s.f.batch - 1) / s.f.batch; // last partial kept
  int64_t total = s.f.stepsGiven ? s.f.steps : s.f.epochs * perEpoch;
  int64_t epochs = (total + perEpoch - 1) / perEpoch;
  CheckpointState at;
  at.seed = s.f.seed;
  if (!s.f.resume.empty()) {
    at = loadCheckpoint(s.m, s.f.resume, s.persist.get());
    std::printf("resuming %s at epoch %lld, batch %lld (step %lld)\n", s.f.resume.c_str(),
                static_cast<long long>(at.epoch + 1), static_cast<long long>(at.position),
                static_cast<long long>(at.step));
  }
  s.announce(counted(epochs, "epoch") + " of " + counted(perEpoch, "batch", "batches") + " of " +
             std::to_string(s.f.batch) + " (" + data.splits.description + ")");
  bool live = ::isatty(STDOUT_FILENO);
  double trainSeconds = 0;
  for (int64_t epoch = at.epoch; epoch < epochs && at.step < total; ++epoch) {
    auto order = epochOrder(count, at.seed, epoch, !s.f.noShuffle);
    auto epochStart = Clock::now();
    for (int64_t b = at.position; b < perEpoch && at.step < total; ++b) {
      int64_t begin = b * s.f.batch;
      int64_t n = std::min(s.f.batch, count - begin);
      batch.fill(train, order.data() + begin, n);
      float loss;
      if (!s.train(++at.step, batch.inputs(), n, loss))
        return 1;
      at.epochLossSum += static_cast<double>(loss) * static_cast<double>(n);
      at.epochSeen += n;
      at.position = b + 1;
      if (at.step % s.m.reportEvery == 0)
        s.metrics.write(
            {{"event", "report"}, {"step", at.step}, {"loss", loss}, {"seconds", s.seconds()}});
      if (interrupted) {
        at.epoch = epoch;
        if (!s.f.checkpoint.empty())
          saveCheckpoint(s.m, s.f.checkpoint, s.persist.get(), at);
        s.save();
        std::printf("\ninterrupted at epoch %lld, batch %lld; weights saved to %s; continue with "
                    "--resume %s\n",
                    static_cast<long long>(epoch + 1), static_cast<long long>(b + 1),
                    s.f.save.c_str(), s.f.checkpoint.c_str());
        return 130;
      }
      if (live && (b % 8 == 0 || b + 1 == perEpoch)) {
        double elapsed = std::chrono::duration<double>(Clock::now() - epochStart).count();
        double rate = static_cast<double>(at.epochSeen) / std::max(elapsed, 1e-9);
        double eta = static_cast<double>(count - at.epochSeen) / std::max(rate, 1e-9);
        std::printf("\repoch %lld/%lld  batch %lld/%lld  loss %.4f  %.0f samples/s  ETA %.1fs   ",
                    static_cast<long long>(epoch + 1), static_cast<long long>(epochs),
                    static_cast<long long>(b + 1), static_cast<long long>(perEpoch),
                    at.epochLossSum / static_cast<double>(at.epochSeen), rate, eta);
        std::fflush(stdout);
      }
    }
    double epochSeconds = std::chrono::duration<double>(Clock::now() - epochStart).count();
    trainSeconds += epochSeconds;
    bool complete = at.position == perEpoch;
    double trainLoss = at.epochLossSum / static_cast<double>(std::max<int64_t>(at.epochSeen, 1));
    int64_t seen = at.epochSeen;
    if (complete) // the next epoch starts from scratch
      at = {epoch + 1, 0, at.step, at.seed, 0, 0};
    else
      at.epoch = epoch;
    if (!s.f.checkpoint.empty())
      saveCheckpoint(s.m, s.f.checkpoint, s.persist.get(), at);
    s.save();
    nlohmann::json record = {{"event", "epoch"}, {"epoch", epoch + 1}, {"step", at.step},
                             {"train_loss", trainLoss}};
    std::string test;
    if (data.splits.test) {
      Evaluation e = evaluate(s, *data.splits.test, batch, s.f.batch);
      test = evaluationText(s.m, e, "test");
      writeEvaluation(s.m, record, e);
    }
    if (live)
      std::printf("\r%*s\r", 100, "");
    std::printf("epoch %lld/%lld%s  train loss %.4f%s  %.2fs\n", static_cast<long long>(epoch + 1),
                static_cast<long long>(epochs), complete ? "" : " (stopped mid-epoch)", trainLoss,
                test.c_str(), epochSeconds);
    std::fflush(stdout);
    record.update(nlohmann::json{
        {"seconds", trainSeconds},
        {"epoch_seconds", epochSeconds},
        {"samples_per_second", static_cast<double>(seen) / std::max(epochSeconds, 1e-9)},
        {"threads", s.f.threads},
        {"worker_chunks", workerChunks()}});
    s.metrics.write(record);
  }
  std::printf("weights saved to %s\n", s.f.save.c_str());
  finalOutputs(s, data.evalSet(), s.f.batch);
  return 0;
}

/// --predict-file FILE: the model's answers for new inputs, as CSV on
/// standard output (the predict entry point: no targets needed).
int predictFile(Session &s, const RunData &data, int64_t capacity) {
  auto inputs = openInputs(s.m, s.f.predictFile);
  int64_t width = s.m.prediction.width;
  int64_t size = std::min(capacity, std::max<int64_t>(inputs->size(), 1));
  Batch batch(inputs->fields(), size);
  std::vector<float> out(static_cast<size_t>(size * width));
  // One pointer per field of the model; predict reads the inputs only.
  std::vector<const float *> pointers(s.m.fields.size(), nullptr);
  bool classes = s.m.prediction.classifier() || s.m.prediction.binary();
  if (classes) {
    std::printf("row,predicted,confidence\n");
  } else {
    std::printf("row");
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

/// --gradcheck: the first batch (two for batched data) at the initial (or
/// --init) parameters.
int gradientCheck(Session &s, const RunData &data) {
  GradCheckOptions o;
  o.entries = s.f.gradCheck;
  o.seed = s.f.seed;
  bool ok = true;
  const Dataset &train = *data.splits.train;
  int64_t count = train.size();
  int64_t size = batched(s.m) ? s.f.batch : count;
  Batch batch(train.fields(), size);
  std::vector<int64_t> rows = firstRows(count);
  int64_t batches = batched(s.m) ? 2 : 1;
  for (int64_t b = 0; b < batches && b * size < count; ++b) {
    int64_t n = std::min(size, count - b * size);
    batch.fill(train, rows.data() + b * size, n);
    if (batched(s.m))
      std::printf("gradient check, batch %lld (%lld examples):\n", static_cast<long long>(b + 1),
                  static_cast<long long>(n));
    else
      std::printf("gradient check (%lld examples):\n", static_cast<long long>(n));
    ok = checkGradients(s.m, s.persist.get(), batch.inputs(), n, s.scratch.get(), o) && ok;
  }
  if (!ok) {
    std::printf("gradcheck FAILED (tolerances: %.0e against finite differences, %.0e for f32)\n",
                o.tolFiniteDifferences, o.tolSinglePrecision);
    return 1;
  }
  std::printf("gradcheck passed (tolerances: %.0e against finite differences, %.0e for f32)\n",
              o.tolFiniteDifferences, o.tolSinglePrecision);
  return 0;
}

/// The files the run reads its data from.
std::vector<std::string> dataFiles(const ModelInfo &m, const Flags &f) {
  std::vector<std::string> files;
  if (!f.data.empty())
    files.push_back(f.data);
  for (const auto &[key, value] : m.dataTexts) {
    if (value.empty())
      continue;
    if (key.size() > 5 && key.compare(key.size() - 5, 5, "_file") == 0)
      files.push_back(value);
    if (m.dataSource == "idx" || m.dataSource == "mnist") // files in the --data folder
      if (key.find("images") != std::string::npos || key.find("labels") != std::string::npos)
        for (const char *suffix : {"", ".gz"})
          files.push_back(f.data + "/" + value + suffix);
  }
  return files;
}

bool samePath(const std::string &a, const std::string &b) {
  namespace fs = std::filesystem;
  std::error_code ea, eb;
  if (fs::exists(a, ea) && fs::exists(b, eb))
    return fs::equivalent(a, b, ea);
  return fs::weakly_canonical(a, ea) == fs::weakly_canonical(b, eb);
}

/// Before training: the weights and checkpoint paths must not be the data,
/// each other, or a file that is not this model's weights (checkpoint).
void checkOutputs(const ModelInfo &m, const Flags &f) {
  std::vector<std::pair<std::string, const char *>> outputs = {{f.save, "--save"}};
  if (!f.checkpoint.empty())
    outputs.push_back({f.checkpoint, "--checkpoint"});
  for (const auto &[path, flag] : outputs)
    for (const std::string &data : dataFiles(m, f))
      if (samePath(path, data))
        throw Error(std::string(flag) + " '" + path + "' is the data this model reads ('" + data +
                    "'); give " + flag + " another path");
  if (outputs.size() == 2 && samePath(f.save, f.checkpoint))
    throw Error("--save and --checkpoint are the same file '" + f.save +
                "'; the weights would replace the checkpoint, and the run could not be resumed");
  checkReplaceable(m, f.save, /*checkpoint=*/false);
  if (!f.checkpoint.empty())
    checkReplaceable(m, f.checkpoint, /*checkpoint=*/true);
}

int run(const netc_model *model, int argc, char **argv) {
  ModelInfo m = parseModelInfo(model);
  checkCpu(m);
  Flags f;
  int exitCode = 0;
  if (!parseFlags(argc, argv, m, f, exitCode))
    return exitCode;
  if (int cores = availableCores(); f.threads > cores)
    std::fprintf(stderr,
                 "warning: --threads %lld is more than the %d cores this process may use; "
                 "the threads will wait for each other (results are the same, only slower)\n",
                 static_cast<long long>(f.threads), cores);
  setThreads(static_cast<int>(f.threads));
  // Ctrl-C from here on stops training cleanly with a checkpoint.
  std::signal(SIGINT, onInterrupt);
  RunData data = openRunData(m, f.data);
  // The scratch area fits the largest batch any loop runs.
  int64_t capacity = batched(m) ? f.batch : data.splits.train->size();
  if (data.splits.test && !batched(m))
    capacity = std::max(capacity, data.splits.test->size());
  Session s(m, f, capacity);
  if (!m.trains)
    return evaluateProgram(s, data);
  if (f.gradCheck)
    return gradientCheck(s, data);
  if (f.eval)
    return evaluateOnly(s, data);
  if (f.predict)
    return predictOnly(s, data);
  if (!f.predictFile.empty())
    return predictFile(s, data, capacity);
  checkOutputs(m, f);
  return batched(m) ? trainEpochs(s, data) : trainFullBatch(s, data);
}

} // namespace

} // namespace netc::rt

extern "C" int netc_main(const netc_model *model, int argc, char **argv) {
  try {
    return netc::rt::run(model, argc, argv);
  } catch (const netc::rt::Error &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  }
}
