// DataSources.cpp - the rows of the data source table.
#include "compiler/sema/DataSources.h"

namespace netc {

namespace {

constexpr double kPi = 3.14159265358979323846;

using K = SourceOption::Kind;

// Options every source with examples to split and batch has.
std::vector<SourceOption> batching(double batch) {
  return {
      {"batch", K::Number, batch, {}, false, "examples per training step (0: all of them at once)"},
      {"test",
       K::Number,
       0,
       {},
       false,
       "the fraction of the examples held out for testing (seeded, stratified by class)"},
      {"split_seed", K::Number, 0, {}, false, "the seed of that split"}};
}

std::vector<SourceOption> join(std::vector<SourceOption> a, const std::vector<SourceOption> &b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<SourceOption> idxFiles() {
  return {
      {"train_images", K::Text, 0, "train-images-idx3-ubyte", false, "inputs of the training set"},
      {"train_labels", K::Text, 0, "train-labels-idx1-ubyte", false, "targets of the training set"},
      {"test_images", K::Text, 0, "t10k-images-idx3-ubyte", false,
       "inputs of the test set (\"\": none)"},
      {"test_labels", K::Text, 0, "t10k-labels-idx1-ubyte", false, "targets of the test set"}};
}

std::vector<SourceSpec> makeTable() {
  std::vector<SourceSpec> t;
  t.push_back({"sine",
               "data sine(points = 2000, from = -pi, to = pi)",
               SourceSpec::Fields::Fixed,
               {{"x", Shape{{kBatch}}, DType::F32}, {"y", Shape{{kBatch}}, DType::F32}},
               {{"points", K::Number, 2000, {}, false, "how many points"},
                {"from", K::Number, -kPi, {}, false, "the first x"},
                {"to", K::Number, kPi, {}, false, "the last x"}},
               ""});
  t.push_back({"inline",
               "data inline(x = [[0, 0], [0, 1]], y = [0, 1])",
               SourceSpec::Fields::Inline,
               {},
               batching(0),
               ""});
  t.push_back({"tensors",
               "data tensors(file = \"data.safetensors\")",
               SourceSpec::Fields::Declared,
               {},
               join({{"file", K::Path, 0, {}, true, "the safetensors file"},
                     {"test_file", K::Path, 0, {}, false, "a safetensors file of test examples"}},
                    batching(0)),
               "file"});
  t.push_back(
      {"mnist",
       "data mnist(dir = \"data/mnist\", batch = 64)",
       SourceSpec::Fields::Fixed,
       {{"image", Shape{{kBatch, 1, 28, 28}}, DType::F32}, {"label", Shape{{kBatch}}, DType::I64}},
       join(join({{"dir", K::Path, 0, "data/mnist", false, "the folder of the IDX files"},
                  {"classes", K::Classes, 10, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9", false,
                   "the names of the 10 classes"}},
                 idxFiles()),
            batching(64)),
       "dir"});
  t.push_back({"idx",
               "data idx(dir = \"data\", classes = 10, batch = 64)",
               SourceSpec::Fields::Pair,
               {},
               join(join({{"dir", K::Path, 0, ".", false, "the folder of the IDX files"},
                          {"classes", K::Classes, 0, "", false,
                           "the class names \"a, b, ...\" or their number (classifiers)"}},
                         idxFiles()),
                    batching(64)),
               "dir"});
  t.push_back(
      {"csv",
       "data csv(file = \"table.csv\", target = \"species\", header = true, batch = 16)",
       SourceSpec::Fields::Pair,
       {},
       join({{"file", K::Path, 0, {}, true, "the table (plain or .gz)"},
             {"skip", K::Number, 0, {}, false, "lines to pass over at the start"},
             {"header", K::Number, 0, {}, false, "true: the first line read names the columns"},
             {"delimiter", K::Text, 0, ",", false, "the separator of the cells (\" \": blanks)"},
             {"inputs", K::Text, 0, "", false,
              "the input columns: indices, names, ranges a:b (default: all but the target)"},
             {"target", K::Text, 0, "", false, "the target column(s) (default: the last)"},
             {"target_file", K::Path, 0, {}, false, "a table of the targets, row by row"},
             {"test_file", K::Path, 0, {}, false, "a table of test examples"},
             {"test_target_file", K::Path, 0, {}, false, "the targets of the test examples"},
             {"classes", K::Classes, 0, "", false,
              "the class names \"a, b, ...\" or their number (classifiers)"}},
            batching(32)),
       "file"});
  t.push_back(
      {"audio",
       "data audio(dir = \"recordings\", sample_rate = 8000, label = \"^[0-9]\", batch = 64)",
       SourceSpec::Fields::Pair,
       {},
       join({{"dir",
              K::Path,
              0,
              {},
              true,
              "the folder of .wav files (searched with its sub-folders)"},
             {"sample_rate", K::Number, 0, {}, true, "the clips' sample rate in Hz"},
             {"label", K::Text, 0, "folder", false,
              "\"folder\": a clip's class is its sub-folder; else a regular expression whose "
              "match (its first group, if it has one) in the file name is the class"},
             {"test_files", K::Text, 0, "", false,
              "a regular expression: the clips whose file names it matches are the test set"},
             {"channel",
              K::Number,
              -1,
              {},
              false,
              "the channel to take (from 0); -1: the mean of all channels"},
             {"classes", K::Classes, 0, "", false,
              "the class names \"a, b, ...\" or their number (default: the labels found)"}},
            batching(64)),
       "dir"});
  return t;
}

} // namespace

const std::vector<SourceSpec> &dataSources() {
  static const std::vector<SourceSpec> table = makeTable();
  return table;
}

const SourceSpec *findDataSource(std::string_view name) {
  for (const SourceSpec &s : dataSources())
    if (s.name == name)
      return &s;
  return nullptr;
}

} // namespace netc
