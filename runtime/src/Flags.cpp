// Flags.cpp - the program's flags: parsed (CLI11), checked, and the output paths
// refused that would replace what is not this model's.
#include "Trainer.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <unistd.h>

namespace netc::rt {

namespace {

std::string programName(const char *argv0) {
  std::string s = argv0 ? argv0 : "train";
  size_t slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

// Validators with messages that say what is wanted (CLI11's own print the
// whole range of a double).
CLI::Validator wholeNumber(uint64_t min = 0, uint64_t max = uint64_t(1) << 62) {
  return CLI::Validator(
      [min, max](std::string &text) -> std::string {
        uint64_t v = 0;
        auto r = std::from_chars(text.data(), text.data() + text.size(), v);
        if (r.ec != std::errc() || r.ptr != text.data() + text.size() || v > max || v < min)
          return (max == uint64_t(1) << 62 ? "expected a whole number >= " + std::to_string(min)
                                           : "expected a whole number from " + std::to_string(min) +
                                                 " to " + std::to_string(max)) +
                 ", got '" + text + "'";
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
        // The step computes in float32: 1e39 would be infinite there.
        if (!std::isfinite(static_cast<float>(v)))
          return "expected a positive number a float can hold (at most 3.4e38), got '" + text + "'";
        return {};
      },
      "");
}

/// Fails now, not after training, if the weights cannot be written there.
void checkWritable(const std::string &path, const char *what = "the weights") {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1));
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error(std::string("cannot write ") + what + " to '" + path + "': " + std::strerror(errno));
}

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

} // namespace

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
  app.add_option("--print-file", f.printFile,
                 "also write the values of the print statements, in full, to this safetensors "
                 "file (each named by its expression)");
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
  app.add_flag("--check-finite", f.checkFinite,
               "check every parameter after every step, and name the first step and tensor "
               "that is no longer finite, and why (the data, a gradient, the update)");
  app.add_option("--plot", f.plot,
                 "draw an SVG picture (opens in a browser): the loss and accuracy curves of "
                 "training (redrawn after every epoch), with --eval the confusion matrix, with "
                 "--predict the sampled images and their answers");
  app.add_flag("--profile", f.profile,
               "time every kernel of the training step and print where the time went: calls, "
               "seconds, share of the step and GFLOP/s per kernel (--emit=opt's names)");
  if (m.code->shard_gradients) {
    f.shards = kDefaultShards;
    app.add_option("--shards", f.shards,
                   "split every batch into this many shards, whose gradients are added in "
                   "order (netc --distributed): the weights depend on it, not on the number "
                   "of processes (mpirun -np) sharing the shards")
        ->check(wholeNumber(1, 1 << 20))
        ->capture_default_str();
  }
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
    app.add_option("--batch", f.batch, "batch size")
        ->check(wholeNumber(1, int64_t(1) << 24))
        ->capture_default_str();
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
                                "model's answers for the inputs in FILE (the data's format; for "
                                "audio a .wav file or a folder of them) as CSV")
                     ->check(CLI::ExistingPath);
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
    if (!f.plot.empty())
      checkWritable(f.plot, "the plot");
    return true;
  }
  if (f.batch > 65536)
    throw CommonError("--batch: at most 65536");
  checkWritable(f.save);
  if (!f.checkpoint.empty())
    checkWritable(f.checkpoint);
  if (!f.plot.empty())
    checkWritable(f.plot, "the plot");
  return true;
}

void checkOutputs(const ModelInfo &m, const Flags &f) {
  std::vector<std::pair<std::string, const char *>> outputs = {{f.save, "--save"}};
  if (!f.checkpoint.empty())
    outputs.push_back({f.checkpoint, "--checkpoint"});
  for (const auto &[path, flag] : outputs)
    for (const std::string &data : dataFiles(m, f))
      if (samePath(path, data))
        throw Error(std::string(flag) + " '" + path + "' is the data this model reads ('" + data +
                    "'); give " + flag + " another path");
  if (!f.plot.empty())
    for (const auto &[path, flag] : outputs)
      if (samePath(path, f.plot))
        throw Error(std::string("--plot and ") + flag + " are the same file '" + f.plot +
                    "'; give --plot another path");
  if (outputs.size() == 2 && samePath(f.save, f.checkpoint))
    throw Error("--save and --checkpoint are the same file '" + f.save +
                "'; the weights would replace the checkpoint, and the run could not be resumed");
  checkReplaceable(m, f.save, /*checkpoint=*/false);
  if (!f.checkpoint.empty())
    checkReplaceable(m, f.checkpoint, /*checkpoint=*/true);
}

} // namespace netc::rt
