// Trainer.h - what the trainer's files share: the flags, the session (model
// state, scratch, metrics, one training step), the run's data, evaluation.
//
// Trainer.cpp runs a program (the training loops, --gradcheck, netc_main);
// Flags.cpp parses and checks its flags; Evaluate.cpp evaluates, predicts
// and prints. Only those files include this header.
#pragma once

#include "GradCheck.h"
#include "Memory.h"
#include "ModelInfo.h"
#include "Safetensors.h"
#include "Shards.h"
#include "Core.h"
#include "ThreadPool.h"
#include "data/Sources.h"
#include "netc/runtime.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace netc::rt {

using Clock = std::chrono::steady_clock;

struct Flags {
  int64_t steps = 0;
  int64_t epochs = 0;
  double lr = 0;
  uint64_t seed = 0;
  std::string init;
  std::string save;
  std::string metrics;
  std::string printFile; ///< --print-file: the print statements' values, in full
  std::string plot;      ///< --plot: an SVG of training, the confusion matrix or predictions
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
  bool checkFinite = false; ///< --check-finite: the parameters after every step
  bool profile = false;     ///< --profile: time the kernels of every training step
  int64_t threads = 1;
  int64_t shards = 0; ///< --shards (a --distributed program; else 0)
};

/// The signal (SIGINT, SIGTERM, SIGHUP) that asked training to stop, or 0:
/// the loop stops after the current step, saves and exits with 128 + it.
extern volatile std::sig_atomic_t interrupted;

/// Shortest text that reads back as the same float.
std::string shortest(float v);

/// Trains in epochs of batches (else: the whole set each step).
inline bool batched(const ModelInfo &m) { return m.batch > 0; }

class MetricsLog {
public:
  /// `keep`: also keep the records (for --plot).
  MetricsLog(const std::string &path, bool keep) : keep_(keep) {
    if (path.empty())
      return;
    out_.open(path, std::ios::app);
    if (!out_)
      throw Error("cannot open the metrics file '" + path + "': " + std::strerror(errno));
  }
  void write(const nlohmann::json &record) {
    if (keep_)
      records_.push_back(record);
    if (!out_.is_open())
      return;
    out_ << record.dump() << '\n';
    out_.flush();
    if (!out_)
      throw Error("cannot write the metrics file: " + std::string(std::strerror(errno)));
  }

  const std::vector<nlohmann::json> &records() const { return records_; }

private:
  std::ofstream out_;
  bool keep_;
  std::vector<nlohmann::json> records_;
};

/// The report line; `computed` holds the values of its expressions, in order.
std::string reportLine(const ModelInfo &m, const float *persist,
                       const std::vector<float> &computed);

/// State shared by both training loops.
struct Session {
  const ModelInfo &m;
  Flags f;
  Aligned<float> persist;
  Aligned<char> scratch;
  int64_t maxBatch;
  Aligned<char> gradientsSpace; ///< gradientsScratch()
  std::vector<float> hparams;
  MetricsLog metrics;
  Clock::time_point start = Clock::now();
  /// --profile: the training steps timed, their examples and seconds.
  struct {
    int64_t steps = 0, examples = 0;
    double seconds = 0;
  } profiled;

  /// The processes training together (one, unless a --distributed
  /// program runs under mpirun); rank 0 alone writes files and prints.
  Group &group;
  /// --distributed: the sharded step; null for train_step.
  std::unique_ptr<ShardedStep> sharded;
  /// The stop signal the loops act on (SIGINT, SIGTERM, SIGHUP) after a
  /// step: with several processes, agreed by all at the same step.
  int stop = 0;

  /// The gradients entry point's own scratch (runtime.h) for `maxBatch`
  /// examples, made at its first use: --gradcheck, --grad-stats and
  /// --check-finite's diagnosis call it.
  char *gradientsScratch() {
    if (!gradientsSpace)
      gradientsSpace = allocateScratch(static_cast<size_t>(
          m.gradientsFixedBytes + m.gradientsBatchBytesPerN * paddedBatch(maxBatch)));
    return gradientsSpace.get();
  }

  Session(const ModelInfo &model, Flags flags, int64_t maxBatch, Group &processes)
      : m(model), f(std::move(flags)),
        persist(allocate<float>(static_cast<size_t>(model.persistentFloats))),
        scratch(allocateScratch(static_cast<size_t>(
            model.scratchFixedBytes + model.scratchBatchBytesPerN * paddedBatch(maxBatch)))),
        maxBatch(maxBatch),
        metrics(processes.rank() == 0 ? f.metrics : std::string(), !f.plot.empty()),
        group(processes) {
    m.code->init(persist.get(), f.seed);
    if (!f.init.empty())
      loadWeights(m, f.init, persist.get());
    hparams = {static_cast<float>(f.lr)};
    hparams.resize(static_cast<size_t>(m.hparamCount), 1.0f);
    netc_step_hparams(m.code, f.seed, 1, hparams.data());
    if (f.shards > 0)
      sharded = std::make_unique<ShardedStep>(m, group, f.shards);
  }

  double seconds() const { return std::chrono::duration<double>(Clock::now() - start).count(); }

  /// Rank 0: the process that writes files and prints.
  bool writer() const { return group.rank() == 0; }

  /// This process's examples of a batch of n (all of them in one process).
  int64_t firstRow(int64_t n) const { return sharded ? sharded->firstRow(n) : 0; }
  int64_t rowCount(int64_t n) const { return sharded ? sharded->rowCount(n) : n; }

  /// Fills `batch` with this process's examples of the batch `rows[0..n)`.
  void fill(Batch &batch, const Dataset &data, const int64_t *rows, int64_t n) const {
    batch.fill(data, rows + firstRow(n), rowCount(n));
  }

  /// One training step (1-based `step`) on the batch of dataset `data`'s
  /// examples `rows[0..n)`, of which `batch` holds this process's share
  /// (fill), or all of them with `whole`; false, with a diagnosis, if the
  /// loss (or with --check-finite a parameter) is no longer finite.
  bool train(int64_t step, const Batch &batch, int64_t n, const Dataset &data,
             const int64_t *rows, float &loss, bool whole = false) {
    netc_step_hparams(m.code, f.seed, step, hparams.data()); // Core.h, as the C library
    int64_t first = whole ? 0 : firstRow(n), count = whole ? n : rowCount(n);
    bool stats = f.gradStats > 0 && step % f.gradStats == 0;
    if (stats)
      gradientsBefore(batch.inputs(), n);
    else if (f.checkFinite)
      before.assign(persist.get(), persist.get() + m.persistentFloats);
    else
      before.clear(); // no copy of this step's starting point
    auto stepStart = Clock::now();
    if (sharded) {
      bool stopAll = false;
      loss = sharded->step(persist.get(), batch.inputs(), first, scratch.get(), n, hparams.data(),
                           interrupted != 0, stopAll);
      stop = stopAll ? (interrupted ? static_cast<int>(interrupted) : SIGTERM) : 0;
    } else {
      loss = m.code->train_step(persist.get(), batch.inputs(), scratch.get(), n, hparams.data());
      stop = interrupted;
    }
    if (f.profile) {
      profiled.seconds += std::chrono::duration<double>(Clock::now() - stepStart).count();
      profiled.steps += 1;
      profiled.examples += n;
    }
    if (stats && std::isfinite(loss))
      printGradStats(step);
    bool finite = std::isfinite(loss) && (!f.checkFinite || nonFiniteParams().empty());
    if (finite)
      return true;
    std::string why = diagnosis(step, batch, count, data, rows + first, loss);
    if (writer())
      std::fprintf(stderr, "error: %s; training stopped. The weights file was not written.\n",
                   why.c_str());
    return false;
  }

  /// The largest magnitude of the parameters' entries of `values` (the
  /// persistent block, or gradients laid out as it is).
  double largestParam(const float *values) const {
    double largest = 0;
    for (const auto &p : m.params)
      for (int64_t i = 0; i < p.numel(); ++i)
        largest = std::max(largest, std::abs(static_cast<double>(values[p.offset + i])));
    return largest;
  }

  /// The parameters holding a value that is not finite.
  std::vector<std::string> nonFiniteParams(const float *values = nullptr) const {
    std::vector<std::string> out;
    const float *v = values ? values : persist.get();
    for (const auto &p : m.params)
      for (int64_t i = 0; i < p.numel(); ++i)
        if (!std::isfinite(v[p.offset + i])) {
          out.push_back(p.name);
          break;
        }
    return out;
  }

  /// Why step `step` stopped: the data, an update, a gradient or the
  /// forward pass, as far as the information at hand tells.
  std::string diagnosis(int64_t step, const Batch &batch, int64_t n, const Dataset &data,
                        const int64_t *rows, float loss) {
    auto what = [](float v) { return std::string(std::isnan(v) ? "nan" : "infinite"); };
    auto aWhat = [&](float v) { return std::string(std::isnan(v) ? "a nan" : "an infinite"); };
    // Finite but huge parameters: updates diverging before anything overflowed.
    auto growth = [&]() -> std::string {
      double largest = largestParam(persist.get());
      if (largest < 1e6)
        return "";
      return "; the parameters have grown to " + shortest(static_cast<float>(largest)) +
             ": updates diverging? try a smaller learning rate (--lr)";
    };
    std::string head = "at step " + std::to_string(step) + " ";
    // The data: the first value that is not finite, by field and example.
    const auto &fields = data.fields();
    for (size_t k = 0; k < fields.size(); ++k) {
      if (fields[k].integer)
        continue;
      const float *x = batch.floats(k);
      for (int64_t i = 0; i < n * fields[k].numel; ++i)
        if (!std::isfinite(x[i])) {
          int64_t example = rows[i / fields[k].numel];
          std::string name = data.name(example);
          return head + "the data holds " + what(x[i]) + " in '" + fields[k].name +
                 "' of example " + std::to_string(example) + (name.empty() ? "" : " (" + name + ")") +
                 ": the loss became " + what(loss) + "; fix or drop that example";
        }
    }
    std::string finiteLoss = std::isfinite(loss) ? "the loss was " + shortest(loss) + ", but " : "";
    if (!before.empty() && nonFiniteParams(before.data()).empty()) {
      // --check-finite: the step again from where it started, every value
      // kept: the first that is not finite names the operation.
      if (std::string first = firstNonFinite(batch, n); !first.empty())
        return head + first;
      // --check-finite: the step started from finite parameters; its
      // gradients on this batch tell an overflowing derivative from an
      // update too large.
      std::vector<std::string> updated = nonFiniteParams();
      std::copy(before.begin(), before.end(), persist.get());
      grads.assign(static_cast<size_t>(m.persistentFloats), 0.0f);
      m.code->gradients(persist.get(), batch.inputs(), gradientsScratch(), n, hparams.data(),
                        grads.data());
      if (!std::isfinite(loss))
        return head + "the forward pass gave " + aWhat(loss) +
               " loss from finite data and parameters: an operation of the model overflows or "
               "is undefined there (log of 0 or of a negative number, 0 / 0, exp of a large "
               "value)" + growth();
      std::vector<std::string> bad = nonFiniteParams(grads.data());
      if (!bad.empty())
        return head + finiteLoss + "the gradient of '" + bad.front() +
               "' is not finite: a derivative overflows (sqrt or log near 0, a division by "
               "a value near 0)";
      double largest = largestParam(grads.data());
      return head + finiteLoss + "its update made '" +
             (updated.empty() ? std::string("a parameter") : updated.front()) +
             "' non-finite from finite gradients (largest |gradient| " + shortest(static_cast<float>(largest)) +
             "): the learning rate is too large; try a smaller one (--lr)";
    }
    std::vector<std::string> bad = nonFiniteParams();
    if (bad.empty())
      return head + "the forward pass gave " + aWhat(loss) +
             " loss from finite data and parameters: an operation of the model overflows or "
             "is undefined there (log of 0 or of a negative number, 0 / 0, exp of a large "
             "value)" + growth();
    return head + "the loss became " + what(loss) + " with finite data, and '" + bad.front() +
           "'" +
           (bad.size() > 1 ? " and " + std::to_string(bad.size() - 1) + " more parameters hold"
                           : " holds") +
           " non-finite values now: an update diverged (a learning rate too large) or an "
           "operation is undefined on this data (log of 0 or of a negative number, 0 / 0); run "
           "with --check-finite to tell which";
  }

  /// The probe (runtime.h) of this step from its starting point `before`
  /// on `batch`: the first value, in the order the step computes them,
  /// that is not finite, as "in the forward pass, 'log' (z) at
  /// model.nn:12:7 gave nan from finite operands" (in the backward pass:
  /// "'div' of the gradient of 'sqrt' at ..."; in the update: "'mul' of the
  /// update of the parameter at ..."); "" if none is.
  std::string firstNonFinite(const Batch &batch, int64_t n) const {
    if (!m.code->probe)
      return "";
    Aligned<float> state = allocate<float>(static_cast<size_t>(m.persistentFloats));
    std::copy(before.begin(), before.end(), state.get());
    Aligned<char> space = allocateScratch(
        static_cast<size_t>(m.probeFixedBytes + m.probeBatchBytesPerN * paddedBatch(n)));
    m.code->probe(state.get(), batch.inputs(), space.get(), n, hparams.data());
    for (const ProbeValue &v : m.probe) {
      if (v.at.region != "scratch")
        continue; // inputs (checked before) and constants
      const auto *values = reinterpret_cast<const float *>(
          space.get() + v.at.fixedBytes + v.at.perNpadBytes * paddedBatch(n));
      for (int64_t i = 0, count = elementsOf(v.at.shape, n); i < count; ++i)
        if (!std::isfinite(values[i])) {
          std::string what = "'" + v.op + "'";
          if (v.phase == "backward")
            what += " of the gradient of '" + v.origin + "'";
          else if (v.phase == "update")
            what += " of the update of the parameter";
          if (!v.label.empty())
            what += " (" + v.label + ")";
          return "in the " + v.phase + " pass, " + what + " at " + m.source + ":" +
                 std::to_string(v.line) + ":" + std::to_string(v.column) + " gave " +
                 (std::isnan(values[i]) ? "nan" : "an infinite value") + " from finite operands";
        }
    }
    return "";
  }

  void announce(const std::string &length) const {
    long long count = 0;
    for (const auto &p : m.params)
      count += p.numel();
    std::printf("training %s: %s, %s, lr %g, %s, %lld thread%s\n", m.name.c_str(),
                counted(count, "parameter").c_str(), m.optimizer.c_str(), f.lr, length.c_str(),
                static_cast<long long>(f.threads), f.threads == 1 ? "" : "s");
  }

  void save() const {
    if (writer())
      saveWeights(m, f.save, persist.get());
  }

  /// The checkpoint (--checkpoint), where training stands at `at`.
  void saveCheckpoint(const CheckpointState &at) const {
    if (writer() && !f.checkpoint.empty())
      rt::saveCheckpoint(m, f.checkpoint, persist.get(), at);
  }

  // --grad-stats: the raw gradients (the gradients entry point) and the parameters
  // before the step; their change after it is the update.
  std::vector<float> grads, before;

  void gradientsBefore(const float *const *inputs, int64_t n) {
    grads.assign(static_cast<size_t>(m.persistentFloats), 0.0f);
    before.assign(persist.get(), persist.get() + m.persistentFloats);
    m.code->gradients(persist.get(), inputs, gradientsScratch(), n, hparams.data(), grads.data());
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

/// The data of a run and what evaluation needs to know about it.
struct RunData {
  Splits splits;
  std::vector<std::string> classes; ///< names by label (classifiers)
  /// Evaluation's examples: the test set, else the training set.
  const Dataset &evalSet() const { return splits.test ? *splits.test : *splits.train; }
  const char *evalName() const { return splits.test ? "test" : "training"; }
};

struct Evaluation {
  double loss = 0;
  double accuracy = 0;
};

/// Parses the flags; returns false (with the exit code in `exitCode`) when the
/// program should stop, e.g. after --help or a bad flag.
bool parseFlags(int argc, char **argv, const ModelInfo &m, Flags &f, int &exitCode);

/// Before training: the weights and checkpoint paths must not be the data,
/// each other, or a file that is not this model's weights (checkpoint).
void checkOutputs(const ModelInfo &m, const Flags &f);

/// The report line; `computed` holds the values of its expressions, in order.
std::string reportLine(const ModelInfo &m, const float *persist,
                       const std::vector<float> &computed);

RunData openRunData(const ModelInfo &m, const std::string &path);

/// The class names of `d`: the data's, else the model's, else 0, 1, ...
void nameClasses(const ModelInfo &m, RunData &d);

std::vector<int64_t> firstRows(int64_t count);

/// All of `data`, in order.
Evaluation evaluate(Session &s, const Dataset &data, Batch &batch, int64_t batchSize);

/// " test loss 0.1234  test accuracy 93.46%" (accuracy for classifiers).
std::string evaluationText(const ModelInfo &m, const Evaluation &e, const char *set);

void writeEvaluation(const ModelInfo &m, nlohmann::json &record, const Evaluation &e);

/// After training: the print statements and the report line, from a
/// forward pass over the first examples of `data` (all of them, or a batch
/// for batched models).
void finalOutputs(Session &s, const Dataset &data, int64_t size);

/// A program with nothing to train: the loss (if it has one), its print
/// statements and its report line, on its data.
int evaluateProgram(Session &s, const RunData &data);

/// The examples evaluation runs in one batch: the batch size, or the whole
/// evaluation set for a model trained on the whole set at once.
int64_t evalBatch(const Session &s, const RunData &data);

/// Writes an SVG (--plot) atomically and says where.
void writePlot(const std::string &path, const std::string &svg);

/// --eval: loss, and for classifiers accuracy and the confusion matrix.
int evaluateOnly(Session &s, const RunData &data);

/// --predict N: N examples of the evaluation set (a sample drawn with
/// --seed), the model's answer beside the expected one.
int predictOnly(Session &s, const RunData &data);

/// --predict-file FILE: the model's answers for new inputs, as CSV on
/// standard output (the predict entry point: no targets needed).
int predictFile(Session &s, const RunData &data, int64_t capacity);

} // namespace netc::rt
