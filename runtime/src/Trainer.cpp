// Trainer.cpp - netc_main: the emitted program's flags, training loop,
// progress, metrics, weights and report line.
#include "Cpu.h"
#include "Data.h"
#include "ModelInfo.h"
#include "Safetensors.h"
#include "netc/runtime.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <unistd.h>

namespace netc::rt {

namespace {

struct Flags {
  int64_t steps = 0;
  double lr = 0;
  uint64_t seed = 0;
  std::string init;
  std::string save;
  std::string metrics;
};

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
CLI::Validator wholeNumber() {
  return CLI::Validator(
      [](std::string &text) -> std::string {
        uint64_t v = 0;
        auto r = std::from_chars(text.data(), text.data() + text.size(), v);
        if (r.ec != std::errc() || r.ptr != text.data() + text.size() || v > (uint64_t(1) << 62))
          return "expected a whole number >= 0, got '" + text + "'";
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

/// Parses the flags; returns false (with the exit code in `exitCode`) when the
/// program should stop, e.g. after --help or a bad flag.
bool parseFlags(int argc, char **argv, const ModelInfo &m, Flags &f, int &exitCode) {
  std::string name = programName(argc > 0 ? argv[0] : nullptr);
  CLI::App app{"Trains the model '" + m.name + "' compiled by netc."};
  app.name(name);
  f.steps = m.steps;
  f.lr = m.lr;
  f.seed = m.seed;
  f.save = name + ".safetensors";
  app.add_option("--steps", f.steps, "total training steps")
      ->check(wholeNumber())
      ->capture_default_str();
  app.add_option("--lr", f.lr, "learning rate")->check(positiveNumber())->capture_default_str();
  app.add_option("--seed", f.seed, "seed for parameter initialisation")
      ->check(wholeNumber())
      ->capture_default_str();
  app.add_option("--init", f.init, "load the parameters from this safetensors weights file")
      ->check(CLI::ExistingFile);
  app.add_option("--save", f.save, "where to write the trained weights (safetensors)")
      ->capture_default_str();
  app.add_option("--metrics", f.metrics, "append JSON Lines progress records to this file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0) {
      exitCode = app.exit(e);
      return false;
    }
    std::cerr << "error: " << e.what() << "\n(run '" << name << " --help' for usage)\n";
    exitCode = 1;
    return false;
  }
  checkWritable(f.save);
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

std::string reportLine(const ModelInfo &m, const float *persist) {
  std::string line;
  for (const auto &p : m.report)
    line += p.param < 0 ? p.text
                        : shortest(persist[m.params[static_cast<size_t>(p.param)].offset + p.offset]);
  return line;
}

int run(int argc, char **argv) {
  ModelInfo m = parseModelInfo(netc_model_json);
  checkCpu(m);
  Flags f;
  int exitCode = 0;
  if (!parseFlags(argc, argv, m, f, exitCode))
    return exitCode;

  MetricsLog metrics(f.metrics);
  Dataset data = loadData(m);
  auto persist = allocate<float>(static_cast<size_t>(m.persistentFloats));
  netc_init(persist.get(), f.seed);
  if (!f.init.empty())
    loadWeights(m, f.init, persist.get());

  int64_t n = data.n;
  int64_t npad = (n + 15) / 16 * 16;
  auto scratch = allocate<char>(static_cast<size_t>(m.scratchFixedBytes + m.scratchBatchBytesPerN * npad));
  std::vector<const float *> inputs;
  for (const auto &field : data.fields)
    inputs.push_back(field.data());
  std::vector<float> hparams = {static_cast<float>(f.lr)};
  hparams.resize(1 + m.stepBases.size(), 1.0f);

  std::printf("training %s: %lld parameters, %s, lr %g, %lld steps\n", m.name.c_str(),
              [&] {
                long long count = 0;
                for (const auto &p : m.params)
                  count += p.numel();
                return count;
              }(),
              m.optimizer.c_str(), f.lr, static_cast<long long>(f.steps));
  using Clock = std::chrono::steady_clock;
  auto start = Clock::now();
  int width = static_cast<int>(std::to_string(f.steps).size());
  for (int64_t step = 1; step <= f.steps; ++step) {
    // Step-dependent hyperparameters (Adam's bias corrections), in double.
    for (size_t i = 0; i < m.stepBases.size(); ++i)
      hparams[1 + i] = static_cast<float>(1.0 - std::pow(m.stepBases[i], static_cast<double>(step)));
    float loss = netc_train_step(persist.get(), inputs.data(), scratch.get(), n, hparams.data());
    if (!std::isfinite(loss)) {
      std::fprintf(stderr,
                   "error: the loss became %s at step %lld; training stopped.\n"
                   "The weights file was not written. Try a smaller learning rate (--lr).\n",
                   std::isnan(loss) ? "nan" : "infinite", static_cast<long long>(step));
      return 1;
    }
    if (step % m.reportEvery == 0 || step == f.steps) {
      double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      std::printf("step %*lld/%lld  loss %s\n", width, static_cast<long long>(step),
                  static_cast<long long>(f.steps), shortest(loss).c_str());
      std::fflush(stdout);
      metrics.write({{"event", "report"}, {"step", step}, {"loss", loss}, {"seconds", seconds}});
    }
  }
  float finalLoss = netc_forward(persist.get(), inputs.data(), scratch.get(), n, hparams.data());
  if (!std::isfinite(finalLoss)) {
    std::fprintf(stderr, "error: the final loss is not finite; the weights file was not written.\n");
    return 1;
  }
  std::printf("final loss %s\n", shortest(finalLoss).c_str());
  saveWeights(m, f.save, persist.get());
  std::printf("weights saved to %s\n", f.save.c_str());
  if (!m.report.empty())
    std::printf("%s\n", reportLine(m, persist.get()).c_str());
  return 0;
}

} // namespace

} // namespace netc::rt

extern "C" int netc_main(int argc, char **argv) {
  try {
    return netc::rt::run(argc, argv);
  } catch (const netc::rt::Error &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  }
}
