// Sources.cpp - openData, and the small sources: sine, inline, tensors.
//   sine:    `points` values of x evenly spaced over [from, to] (computed as
//            torch.linspace does in float32), and y = sin(x).
//   inline:  tensors written in the .nn file.
//   tensors: named tensors of a safetensors file (and maybe a test file).
#include "Sources.h"

#include "Safetensors.h"
#include "data/Idx.h"

#include <cmath>
#include <string_view>

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

Splits whole(std::shared_ptr<const Dataset> all) {
  Splits s;
  s.description = counted(all->size(), "example");
  s.train = std::move(all);
  return s;
}

/// Checks that every class label of `data` names a class.
void checkLabels(const Dataset &data, int field, int64_t classes, const std::string &where) {
  if (field < 0)
    return;
  for (int64_t i = 0; i < data.size(); ++i) {
    int64_t l = data.label(i, static_cast<size_t>(field));
    if (l < 0 || l >= classes)
      throw Error(where + ": label " + std::to_string(l) + " of item " + std::to_string(i) +
                  " of '" + data.fields()[static_cast<size_t>(field)].name +
                  "' is not a class of this model (0 to " + std::to_string(classes - 1) + ")");
  }
}

/// The declared fields from a safetensors file: dtype and shape as
/// declared, the batch dimension first and the same in all.
std::shared_ptr<const Dataset> tensorFile(const ModelInfo &m, const std::string &file) {
  auto all = readSafetensors(file);
  std::vector<FieldLayout> layouts = fieldLayouts(m);
  std::vector<TableDataset::Column> columns;
  int64_t n = -1;
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
      } else if (n < 0 || n == t.shape[i]) {
        n = t.shape[i];
      } else {
        throw Error("'" + file + "': tensor '" + f.name + "' has " + std::to_string(t.shape[i]) +
                    " rows, the others " + std::to_string(n));
      }
    }
    if (!fits)
      throw Error("'" + file + "': tensor '" + f.name + "' has shape " +
                  TensorInfo{"", t.shape, 0}.shapeString() + ", the model declares " +
                  TensorInfo{"", f.shape, 0}.shapeString());
    TableDataset::Column c;
    if (integer)
      c.ints = std::move(t.ints);
    else
      c.floats = std::move(t.data);
    columns.push_back(std::move(c));
  }
  if (n < 1)
    throw Error("'" + file + "': no tensor has the batch dimension N, or it is empty");
  auto data = std::make_shared<TableDataset>(std::move(layouts), std::move(columns), n);
  checkLabels(*data, classField(m), classCount(m), "'" + file + "'");
  return data;
}

using Opener = Splits (*)(const ModelInfo &, const std::string &);

/// Every source the runtime knows, by the name sema's table gives it.
constexpr std::pair<std::string_view, Opener> kSources[] = {
    {"sine", openSine}, {"inline", openInline}, {"tensors", openTensors}, {"mnist", openIdx},
    {"idx", openIdx},   {"csv", openCsv},       {"audio", openAudio},
};

} // namespace

int64_t classCount(const ModelInfo &m) {
  if (!m.prediction.classifier())
    return 0;
  return m.classes.empty() ? m.prediction.classes : static_cast<int64_t>(m.classes.size());
}

int classField(const ModelInfo &m) {
  if (!m.prediction.classifier() || m.prediction.target < 0)
    return -1;
  return m.prediction.target;
}

Splits openSine(const ModelInfo &m, const std::string &) {
  auto points = static_cast<int64_t>(m.option("points"));
  std::vector<float> x =
      linspace(static_cast<float>(m.option("from")), static_cast<float>(m.option("to")), points);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = std::sin(x[i]);
  std::vector<TableDataset::Column> columns;
  for (const auto &f : m.fields) {
    if (f.name != "x" && f.name != "y")
      throw Error("data source 'sine' has no field '" + f.name + "'");
    columns.push_back({f.name == "x" ? x : y, {}});
  }
  return whole(std::make_shared<TableDataset>(fieldLayouts(m), std::move(columns), points));
}

Splits openInline(const ModelInfo &m, const std::string &) {
  std::vector<TableDataset::Column> columns;
  int64_t rows = 1;
  for (const auto &f : m.fields) {
    const std::vector<double> *values = nullptr;
    for (const auto &[name, v] : m.inlineTensors)
      if (name == f.name)
        values = &v;
    if (!values)
      throw Error("the model description lacks the inline tensor '" + f.name + "'");
    TableDataset::Column c;
    for (double v : *values) {
      if (f.dtype == "i64")
        c.ints.push_back(static_cast<int64_t>(v));
      else
        c.floats.push_back(static_cast<float>(v));
    }
    int64_t numel = 1;
    for (auto d : f.shape)
      numel *= d == kBatch ? 1 : d;
    rows = static_cast<int64_t>(values->size()) / numel;
    columns.push_back(std::move(c));
  }
  auto data = std::make_shared<TableDataset>(fieldLayouts(m), std::move(columns), rows);
  checkLabels(*data, classField(m), classCount(m), "the inline data");
  return whole(std::move(data));
}

Splits openTensors(const ModelInfo &m, const std::string &path) {
  auto train = tensorFile(m, path);
  const std::string &testFile = m.text("test_file");
  if (testFile.empty())
    return whole(std::move(train));
  Splits s;
  s.train = std::move(train);
  s.test = tensorFile(m, testFile);
  s.description =
      std::to_string(s.train->size()) + " training, " + counted(s.test->size(), "test example");
  return s;
}

std::vector<FieldLayout> inputLayouts(const ModelInfo &m) {
  std::vector<FieldLayout> out;
  for (const FieldLayout &l : fieldLayouts(m))
    if (l.role == "input")
      out.push_back(l);
  return out;
}

std::shared_ptr<const Dataset> openInputs(const ModelInfo &m, const std::string &file) {
  std::vector<FieldLayout> layouts = inputLayouts(m);
  if (m.dataSource == "csv")
    return csvInputs(m, file);
  if (m.dataSource == "audio")
    return audioInputs(m, file);
  if (m.dataSource == "idx" || m.dataSource == "mnist") {
    if (layouts.size() != 1)
      throw Error("predictions from an IDX file need a model with one input field");
    IdxArray a = readIdx(file);
    if (a.itemSize() != layouts[0].numel)
      throw Error("the items of '" + file + "' have " + std::to_string(a.itemSize()) +
                  " values; the model's '" + layouts[0].name + "' takes " +
                  std::to_string(layouts[0].numel));
    std::vector<TableDataset::Column> cols(1);
    cols[0].floats.resize(static_cast<size_t>(a.dims[0] * a.itemSize()));
    for (int64_t i = 0; i < a.dims[0]; ++i)
      a.itemToFloat(i, cols[0].floats.data() + i * a.itemSize());
    return std::make_shared<TableDataset>(std::move(layouts), std::move(cols), a.dims[0]);
  }
  if (m.dataSource == "tensors") {
    auto all = readSafetensors(file);
    std::vector<TableDataset::Column> cols;
    int64_t n = -1;
    for (const FieldLayout &l : layouts) {
      auto it = all.find(l.name);
      if (it == all.end() || it->second.dtype != "F32" || it->second.shape.empty())
        throw Error("'" + file + "' has no F32 tensor '" + l.name + "' (the model's input)");
      int64_t rows = it->second.shape[0];
      if (static_cast<int64_t>(it->second.data.size()) != rows * l.numel || (n >= 0 && n != rows))
        throw Error("'" + file + "': tensor '" + l.name + "' does not have the input's shape");
      n = rows;
      cols.push_back({std::move(it->second.data), {}});
    }
    return std::make_shared<TableDataset>(std::move(layouts), std::move(cols), n);
  }
  throw Error("--predict-file reads csv, idx, tensors and audio data; this model's data is '" +
              m.dataSource + "'");
}

Splits openData(const ModelInfo &m, const std::string &path) {
  for (const auto &[name, open] : kSources) {
    if (name != m.dataSource)
      continue;
    Splits s = open(m, path);
    double fraction = m.dataNumbers.count("test") ? m.option("test") : 0;
    if (s.test || fraction <= 0)
      return s;
    int64_t classes = s.classes.empty() ? classCount(m) : static_cast<int64_t>(s.classes.size());
    auto names = std::move(s.classes);
    Splits split =
        splitDataset(std::move(s.train), fraction, static_cast<uint64_t>(m.option("split_seed")),
                     classField(m), classes);
    split.classes = std::move(names);
    return split;
  }
  throw Error("this runtime does not know the data source '" + m.dataSource + "'");
}

} // namespace netc::rt
