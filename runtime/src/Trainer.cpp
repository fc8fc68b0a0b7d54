// Trainer.cpp - netc_main: a model's program: the training loops with
// their progress, metrics, weights and checkpoints, and --gradcheck.
// (Flags.cpp: the flags; Evaluate.cpp: evaluation and predictions.)
//
// Every data source is a Dataset (data/Dataset.h); the trainer never knows
// which. Two loops: a model without a batch size trains on the whole set at
// once for --steps steps; a model with one trains in epochs of shuffled
// batches. Both evaluate on the test examples when there are any.
#include "Trainer.h"
#include "AtomicFile.h"
#include "Cpu.h"
#include "Plot.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <chrono>
#include <numeric>
#include <sys/stat.h>
#include <unistd.h>

namespace netc::rt {

volatile std::sig_atomic_t interrupted = 0;

namespace {

extern "C" void onInterrupt(int signal) { interrupted = signal; }

/// --plot: the loss and accuracy curves so far, written atomically (a
/// browser reloading it never sees half a picture).
void drawTraining(const Session &s) {
  if (s.f.plot.empty() || !s.writer())
    return;
  std::string title = "model " + s.m.name + ": " + s.m.optimizer + ", lr " + shortest(static_cast<float>(s.f.lr));
  std::string svg = trainingPlot(s.metrics.records(), title);
  writeFileAtomically(s.f.plot, [&](int fd) { writeAll(fd, svg.data(), svg.size(), s.f.plot); });
}

/// Whether something is at `path` (a file an early interrupt must not replace).
bool exists(const std::string &path) {
  struct stat st;
  return !path.empty() && ::stat(path.c_str(), &st) == 0;
}

int trainFullBatch(Session &s, const RunData &data) {
  bool reported = false; // an interrupt before the first report keeps old files
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
    if (!s.train(step, batch, n, train, rows.data(), loss, /*whole=*/true))
      return 1;
    if (s.stop) {
      if (!reported && exists(s.f.save)) {
        std::printf("\ninterrupted at step %lld, before the first report: %s was left as it "
                    "was\n",
                    static_cast<long long>(step), s.f.save.c_str());
        return 128 + s.stop;
      }
      s.save();
      std::printf("\ninterrupted at step %lld; weights saved to %s\n", static_cast<long long>(step),
                  s.f.save.c_str());
      return 128 + s.stop;
    }
    if (step % s.m.reportEvery == 0 || step == s.f.steps) {
      reported = true;
      double seconds = s.seconds();
      nlohmann::json record = {
          {"event", "report"}, {"step", step}, {"loss", loss}, {"seconds", seconds}};
      std::string test;
      if (testBatch && s.writer()) {
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
  drawTraining(s);
  if (s.writer())
    finalOutputs(s, train, n);
  return 0;
}

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

/// A resumed run continues the same run: the same batches in the same
/// order, from a position that exists.
void checkResume(const Session &s, const CheckpointState &at, const CheckpointState &current,
                 int64_t perEpoch, int64_t total) {
  const std::string &file = s.f.resume;
  if (at.batch != 0 && at.batch != s.f.batch)
    throw Error("--batch " + std::to_string(s.f.batch) + " differs from the run in '" + file +
                "' (" + std::to_string(at.batch) + "); resume with --batch " +
                std::to_string(at.batch));
  if (at.shards != s.f.shards)
    throw Error("the run in '" + file + "' was " +
                (at.shards ? "trained on " + std::to_string(at.shards) + " shards per batch"
                           : std::string("not sharded (a program without --distributed)")) +
                "; this one " +
                (s.f.shards ? "has " + std::to_string(s.f.shards) + " (--shards)"
                            : std::string("is not sharded")) +
                ": the steps would differ; resume it with the same " +
                (at.shards ? "--shards " + std::to_string(at.shards) : std::string("kind of program")));
  if (at.shuffle == s.f.noShuffle)
    throw Error(std::string("the run in '") + file + "' was " +
                (at.shuffle ? "shuffled" : "not shuffled (--no-shuffle)") +
                "; resume it the same way");
  if (!at.data.empty() && at.data != current.data)
    throw Error("the run in '" + file + "' trained on other data (" + at.data + "; this is " +
                current.data + "); resume it on the same data");
  if (at.position > perEpoch || at.epoch * perEpoch + at.position != at.step)
    throw Error("'" + file + "' holds inconsistent counters (epoch " + std::to_string(at.epoch) +
                ", batch " + std::to_string(at.position) + ", step " + std::to_string(at.step) +
                ") for " + counted(perEpoch, "batch", "batches") +
                " an epoch: another data set or batch size?");
  if (at.step >= total)
    throw Error("the run in '" + file + "' is already at step " + std::to_string(at.step) +
                " of the " + std::to_string(total) +
                " asked for: nothing to train (give more --epochs or --steps)");
}

int trainEpochs(Session &s, const RunData &data) {
  const Dataset &train = *data.splits.train;
  Batch batch(train.fields(), s.f.batch);
  int64_t count = train.size();
  int64_t perEpoch = (count + s.f.batch - 1) / s.f.batch; // last partial kept
  int64_t total = s.f.stepsGiven ? s.f.steps : s.f.epochs * perEpoch;
  int64_t epochs = (total + perEpoch - 1) / perEpoch;
  CheckpointState at;
  at.shards = s.f.shards;
  at.seed = s.f.seed;
  at.batch = s.f.batch;
  at.shuffle = !s.f.noShuffle;
  at.data = dataFingerprint(train);
  if (!s.f.resume.empty()) {
    CheckpointState current = at;
    at = loadCheckpoint(s.m, s.f.resume, s.persist.get());
    checkResume(s, at, current, perEpoch, total);
    at.data = current.data;
    std::printf("resuming %s at epoch %lld, batch %lld (step %lld)\n", s.f.resume.c_str(),
                static_cast<long long>(at.epoch + 1), static_cast<long long>(at.position),
                static_cast<long long>(at.step));
  }
  s.announce(counted(epochs, "epoch") + " of " + counted(perEpoch, "batch", "batches") + " of " +
             std::to_string(s.f.batch) + " (" + data.splits.description + ")");
  bool live = ::isatty(STDOUT_FILENO);
  double trainSeconds = 0;
  bool completedEpoch = false; // an interrupt before one keeps old files (unless resumed)
  bool saved = false;
  for (int64_t epoch = at.epoch; epoch < epochs && at.step < total; ++epoch) {
    auto order = epochOrder(count, at.seed, epoch, !s.f.noShuffle);
    auto epochStart = Clock::now();
    for (int64_t b = at.position; b < perEpoch && at.step < total; ++b) {
      int64_t begin = b * s.f.batch;
      int64_t n = std::min(s.f.batch, count - begin);
      s.fill(batch, train, order.data() + begin, n);
      float loss;
      if (!s.train(++at.step, batch, n, train, order.data() + begin, loss))
        return 1;
      at.epochLossSum += static_cast<double>(loss) * static_cast<double>(n);
      at.epochSeen += n;
      at.position = b + 1;
      if (at.step % s.m.reportEvery == 0)
        s.metrics.write(
            {{"event", "report"}, {"step", at.step}, {"loss", loss}, {"seconds", s.seconds()}});
      if (s.stop && s.f.resume.empty() && !completedEpoch &&
          (exists(s.f.save) || exists(s.f.checkpoint))) {
        std::printf("\ninterrupted at epoch %lld, batch %lld, before the first epoch ended: %s "
                    "and %s were left as they were\n",
                    static_cast<long long>(epoch + 1), static_cast<long long>(b + 1),
                    s.f.save.c_str(), s.f.checkpoint.c_str());
        return 128 + s.stop;
      }
      if (s.stop) {
        at.epoch = epoch;
        s.save();
        s.saveCheckpoint(at);
        std::printf("\ninterrupted at epoch %lld, batch %lld; weights saved to %s; continue with "
                    "--resume %s\n",
                    static_cast<long long>(epoch + 1), static_cast<long long>(b + 1),
                    s.f.save.c_str(), s.f.checkpoint.c_str());
        return 128 + s.stop;
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
    completedEpoch = completedEpoch || complete;
    double trainLoss = at.epochLossSum / static_cast<double>(std::max<int64_t>(at.epochSeen, 1));
    int64_t seen = at.epochSeen;
    if (complete) // the next epoch starts from scratch
      at = {epoch + 1, 0, at.step, at.seed, 0, 0, at.batch, at.shuffle, at.data, at.shards};
    else
      at.epoch = epoch;
    // The weights first: killed between the two writes, the checkpoint is
    // the previous epoch's, and resuming it redoes this epoch to the same
    // bits (the other order could leave a finished checkpoint beside the
    // previous epoch's weights).
    s.save();
    s.saveCheckpoint(at);
    nlohmann::json record = {
        {"event", "epoch"}, {"epoch", epoch + 1}, {"step", at.step}, {"train_loss", trainLoss}};
    std::string test;
    if (data.splits.test && s.writer()) {
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
    if (s.sharded) { // where rank 0's steps spent their time (bench/distributed.sh)
      ShardedStep::Timings t = s.sharded->takeTimings();
      record.update(nlohmann::json{{"shards", s.sharded->shards()},
                                   {"processes", s.group.size()},
                                   {"compute_seconds", t.compute},
                                   {"exchange_seconds", t.exchange},
                                   {"update_seconds", t.update},
                                   {"epoch_steps", t.steps}});
    }
    s.metrics.write(record);
    drawTraining(s);
    saved = true;
  }
  if (!saved) // --steps 0: the initial weights, exported on purpose
    s.save();
  std::printf("weights saved to %s\n", s.f.save.c_str());
  if (s.writer())
    finalOutputs(s, data.evalSet(), s.f.batch);
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
    ok = checkGradients(s.m, s.persist.get(), batch.inputs(), n, s.gradientsScratch(),
                        s.hparams.data(), o) &&
         ok;
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

void startProfile(const ModelInfo &m) {
  int32_t kernels = 0;
  for (const ProfileKernel &k : m.profile)
    kernels = std::max(kernels, k.index + 1);
  if (int err = netc_profile_start(kernels))
    throw Error(std::string("--profile: ") + std::strerror(err));
}

/// --profile's table: the step's kernels by time spent, with their share of
/// the steps' wall time and the GFLOP/s their operations ran at.
void printProfile(const Session &s) {
  netc_profile_stop();
  const auto &p = s.profiled;
  if (p.steps == 0)
    return;
  struct Row {
    const ProfileKernel *kernel;
    double seconds;
    int64_t calls;
  };
  std::vector<Row> rows;
  double inKernels = 0;
  for (const ProfileKernel &k : s.m.profile) {
    Row r{&k, 0, 0};
    netc_profile_kernel(k.index, &r.seconds, &r.calls);
    inKernels += r.seconds;
    rows.push_back(r);
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const Row &a, const Row &b) { return a.seconds > b.seconds; });
  double total = std::max(p.seconds, 1e-12), flops = 0;
  std::printf("\nprofile of %s (train_step, %s): %.4g s, %.4g ms per step\n",
              counted(p.steps, "training step").c_str(), counted(s.f.threads, "thread").c_str(),
              p.seconds, 1e3 * p.seconds / static_cast<double>(p.steps));
  std::printf("  %-20s %-34s %7s %10s %7s %9s\n", "kernel", "ops", "calls", "seconds", "share",
              "GFLOP/s");
  for (const Row &r : rows) {
    const ProfileKernel &k = *r.kernel;
    double work = k.flops * static_cast<double>(r.calls) +
                  k.flopsPerN * static_cast<double>(p.examples);
    flops += work;
    std::string ops = k.ops + (k.label.empty() ? "" : " (" + k.label + ")");
    if (ops.size() > 34)
      ops = ops.substr(0, 31) + "...";
    std::printf("  %-20s %-34s %7lld %10.6f %6.1f%% %9.1f\n", k.name.c_str(), ops.c_str(),
                static_cast<long long>(r.calls), r.seconds, 100 * r.seconds / total,
                r.seconds > 0 ? work / r.seconds * 1e-9 : 0.0);
  }
  std::printf("  %-20s %-34s %7s %10.6f %6.1f%%\n", "(between kernels)", "", "",
              std::max(p.seconds - inKernels, 0.0), 100 * std::max(p.seconds - inKernels, 0.0) / total);
  std::printf("  %-20s %-34s %7lld %10.6f %6.1f%% %9.1f\n", "total", "",
              static_cast<long long>(p.steps), p.seconds, 100.0, flops / total * 1e-9);
}

int run(const netc_model *model, int argc, char **argv, Group &group) {
  ModelInfo m = parseModelInfo(model);
  checkCpu(m);
  Flags f;
  int exitCode = 0;
  if (!parseFlags(argc, argv, m, f, exitCode))
    return exitCode;
  if (group.size() > 1) {
    // What looks at one process's step, or trains nothing, is one
    // process's job.
    for (auto [on, flag] : {std::pair{f.gradCheck > 0, "--gradcheck"},
                            {f.gradStats > 0, "--grad-stats"},
                            {f.profile, "--profile"}})
      if (on)
        throw CommonError(std::string(flag) + " looks at one process's training step; run the "
                                              "program without mpirun for it");
    if (f.eval || f.predict || !f.predictFile.empty() || !m.trains)
      if (group.rank() > 0)
        return 0; // rank 0 evaluates
  }
  if (int cores = availableCores(); f.threads > cores)
    std::fprintf(stderr,
                 "warning: --threads %lld is more than the %d cores this process may use; "
                 "the threads will wait for each other (results are the same, only slower)\n",
                 static_cast<long long>(f.threads), cores);
  setThreads(static_cast<int>(f.threads));
  // Ctrl-C from here on stops training cleanly with a checkpoint.
  // So do SIGTERM and SIGHUP, what systemd, docker and batch schedulers send.
  for (int signal : {SIGINT, SIGTERM, SIGHUP})
    std::signal(signal, onInterrupt);
  // A training run refuses its output paths before it reads any data.
  bool trains = m.trains && !f.gradCheck && !f.eval && !f.predict && f.predictFile.empty();
  if (trains)
    checkOutputs(m, f);
  // Predictions from a file need the training data only for class names
  // that only the data gives (a csv or audio classifier that declares
  // none): a trained model answers where its data set is not.
  bool namesFromData = (m.dataSource == "csv" || m.dataSource == "audio") && m.classes.empty();
  if (m.trains && !f.predictFile.empty() && !namesFromData) {
    RunData none;
    nameClasses(m, none);
    int64_t capacity = batched(m) ? f.batch : 1024;
    Session s(m, f, capacity, group);
    return predictFile(s, none, capacity);
  }
  RunData data = openRunData(m, f.data);
  // The scratch area fits the largest batch any loop runs.
  int64_t capacity = batched(m) ? f.batch : data.splits.train->size();
  if (data.splits.test && !batched(m))
    capacity = std::max(capacity, data.splits.test->size());
  Session s(m, f, capacity, group);
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
  // Every step's batch must be big enough (the last one of an epoch too).
  int64_t count = data.splits.train->size();
  int64_t last = batched(m) ? (count % f.batch == 0 ? std::min(f.batch, count) : count % f.batch)
                            : count;
  if (std::min(last, batched(m) ? f.batch : count) < m.minBatch)
    throw CommonError("batch norm over [N, C] needs at least " + std::to_string(m.minBatch) +
                      " examples in every training batch (the variance of one is 0), but " +
                      (batched(m) ? "the last batch of each epoch (" + std::to_string(count) +
                                        " examples in batches of " + std::to_string(f.batch) +
                                        ") has " + std::to_string(last)
                                  : "the data has " + std::to_string(count)) +
                      "; choose another --batch");
  if (f.profile)
    startProfile(m);
  int status = batched(m) ? trainEpochs(s, data) : trainFullBatch(s, data);
  if (f.profile)
    printProfile(s);
  return status;
}

} // namespace

std::string shortest(float v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

int trainerMain(const netc_model *model, int argc, char **argv, Group &group) {
  // With several processes, an error names the rank it happened on.
  std::string rank = group.size() > 1 ? "rank " + std::to_string(group.rank()) + ": " : "";
  try {
    return run(model, argc, argv, group);
  } catch (const Error &e) {
    if (dynamic_cast<const CommonError *>(&e) && group.rank() > 0)
      group.awaitAbort(); // every rank met it: rank 0 reports it
    std::fprintf(stderr, "%serror: %s\n", rank.c_str(), e.what());
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "%serror: out of memory\n", rank.c_str());
  } catch (const std::length_error &) { // a size the flags or files made absurd
    std::fprintf(stderr, "%serror: out of memory (a size beyond what this machine can hold)\n",
                 rank.c_str());
  } catch (const std::exception &e) { // never abort: name what went wrong
    std::fprintf(stderr, "%serror: %s\n", rank.c_str(), e.what());
  }
  // The other processes may be waiting for this one: end them all.
  if (group.size() > 1)
    group.abort(1);
  return 1;
}

} // namespace netc::rt

extern "C" int netc_main(const netc_model *model, int argc, char **argv) {
  netc::rt::Group alone;
  return netc::rt::trainerMain(model, argc, argv, alone);
}
