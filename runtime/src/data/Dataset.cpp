// Dataset.cpp - in-memory tables, subsets, seeded splits and batches.
#include "Dataset.h"

#include <algorithm>
#include <cstdio>

#include "netc/runtime.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace netc::rt {

std::vector<FieldLayout> fieldLayouts(const ModelInfo &m) {
  std::vector<FieldLayout> out;
  for (const auto &f : m.fields) {
    FieldLayout l{f.name, f.role, f.dtype == "i64", 1};
    for (size_t i = 0; i < f.shape.size(); ++i)
      if (f.shape[i] != kBatch)
        l.numel *= f.shape[i];
    out.push_back(std::move(l));
  }
  return out;
}

// ---- tables -----------------------------------------------------------------

TableDataset::TableDataset(std::vector<FieldLayout> fields, std::vector<Column> columns,
                           int64_t count)
    : Dataset(std::move(fields)), columns_(std::move(columns)), count_(count) {}

void TableDataset::fill(const int64_t *rows, int64_t n, void *const *out) const {
  for (size_t f = 0; f < fields().size(); ++f) {
    const FieldLayout &l = fields()[f];
    auto width = static_cast<size_t>(l.numel);
    for (int64_t i = 0; i < n; ++i) {
      auto from = static_cast<size_t>(rows[i]) * width, to = static_cast<size_t>(i) * width;
      if (l.integer)
        std::memcpy(static_cast<int64_t *>(out[f]) + to, columns_[f].ints.data() + from,
                    width * sizeof(int64_t));
      else
        std::memcpy(static_cast<float *>(out[f]) + to, columns_[f].floats.data() + from,
                    width * sizeof(float));
    }
  }
}

int64_t TableDataset::label(int64_t row, size_t field) const {
  return columns_[field].ints[static_cast<size_t>(row * fields()[field].numel)];
}

// ---- subsets ----------------------------------------------------------------

SubsetDataset::SubsetDataset(std::shared_ptr<const Dataset> parent, std::vector<int64_t> rows)
    : Dataset(parent->fields()), parent_(std::move(parent)), rows_(std::move(rows)) {}

void SubsetDataset::fill(const int64_t *rows, int64_t n, void *const *out) const {
  mapped_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    mapped_[static_cast<size_t>(i)] = rows_[static_cast<size_t>(rows[i])];
  parent_->fill(mapped_.data(), n, out);
}

int64_t SubsetDataset::label(int64_t row, size_t field) const {
  return parent_->label(rows_[static_cast<size_t>(row)], field);
}

// ---- splits -----------------------------------------------------------------

namespace {

/// Fisher-Yates over the counter-based generator: the same for a seed on
/// every machine.
void shuffle(std::vector<int64_t> &v, uint64_t seed, uint64_t stream) {
  for (size_t i = v.size(); i > 1; --i) {
    float u = netc_rt_uniform(seed, stream, i - 1);
    auto j = std::min<size_t>(i - 1, static_cast<size_t>(u * static_cast<float>(i)));
    std::swap(v[i - 1], v[j]);
  }
}

} // namespace

Splits splitDataset(std::shared_ptr<const Dataset> all, double testFraction, uint64_t seed,
                    int classField, int64_t classes) {
  int64_t count = all->size();
  // Groups drawn from separately: the classes, or everything at once.
  std::vector<std::vector<int64_t>> groups(classField >= 0 ? static_cast<size_t>(classes) : 1);
  for (int64_t i = 0; i < count; ++i) {
    int64_t g = classField >= 0 ? all->label(i, static_cast<size_t>(classField)) : 0;
    if (g < 0 || g >= static_cast<int64_t>(groups.size()))
      throw Error("example " + std::to_string(i) + " has label " + std::to_string(g) +
                  ", not a class of this model (0 to " + std::to_string(classes - 1) + ")");
    groups[static_cast<size_t>(g)].push_back(i);
  }
  std::vector<char> isTest(static_cast<size_t>(count), 0);
  for (size_t g = 0; g < groups.size(); ++g) {
    shuffle(groups[g], seed, 0x5b117000u + g);
    auto take =
        static_cast<size_t>(std::llround(testFraction * static_cast<double>(groups[g].size())));
    for (size_t k = 0; k < take; ++k)
      isTest[static_cast<size_t>(groups[g][k])] = 1;
  }
  std::vector<int64_t> train, test;
  for (int64_t i = 0; i < count; ++i)
    (isTest[static_cast<size_t>(i)] ? test : train).push_back(i);
  if (train.empty())
    throw Error("the test split (" + std::to_string(testFraction) +
                ") leaves no training examples");
  Splits s;
  s.description = std::to_string(train.size()) + " training, " +
                  counted(static_cast<int64_t>(test.size()), "test example");
  s.train = std::make_shared<SubsetDataset>(all, std::move(train));
  if (!test.empty())
    s.test = std::make_shared<SubsetDataset>(all, std::move(test));
  return s;
}

// ---- batches ----------------------------------------------------------------

Batch::Batch(const std::vector<FieldLayout> &fields, int64_t capacity) {
  for (const auto &f : fields) {
    auto size = static_cast<size_t>(capacity * f.numel);
    if (f.integer) {
      ints_.emplace_back(size);
      pointers_.push_back(reinterpret_cast<const float *>(ints_.back().data()));
    } else {
      floats_.emplace_back(size);
      pointers_.push_back(floats_.back().data());
    }
  }
  // Pointers into the vectors above stay valid: they are never resized.
  for (const float *p : pointers_)
    out_.push_back(const_cast<float *>(p));
}

void Batch::fill(const Dataset &data, const int64_t *rows, int64_t n) {
  n_ = n;
  data.fill(rows, n, out_.data());
}

std::string dataFingerprint(const Dataset &data) {
  int64_t count = data.size();
  int64_t samples = std::min<int64_t>(count, 64);
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < samples; ++i)
    rows.push_back(i * count / std::max<int64_t>(samples, 1));
  Batch batch(data.fields(), std::max<int64_t>(samples, 1));
  if (samples > 0)
    batch.fill(data, rows.data(), samples);
  uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a over the sampled examples' bytes
  for (size_t f = 0; f < data.fields().size(); ++f) {
    auto bytes = reinterpret_cast<const unsigned char *>(batch.inputs()[f]);
    size_t width = data.fields()[f].integer ? 8 : 4;
    for (size_t b = 0; b < static_cast<size_t>(samples * data.fields()[f].numel) * width; ++b)
      h = (h ^ bytes[b]) * 0x100000001b3ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::to_string(count) + " examples, sample " + hex;
}

} // namespace netc::rt
