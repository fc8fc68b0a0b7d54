// Dataset.h - every data source behind one interface, and batches of it.
//
// A Dataset is a number of examples, each with one value per field of the
// model (in the model's declaration order), and fills a batch from a list
// of example indices. The trainer (epochs, shuffling, evaluation,
// prediction, checkpoints) sees nothing else, so every source (Sources.h)
// trains the same way. This file also holds what works on any dataset: an
// in-memory table, a view of some of another dataset's examples, seeded
// (stratified) train/test splits, and the batch buffers.
#pragma once

#include "ModelInfo.h"

#include <memory>
#include <string>
#include <vector>

namespace netc::rt {

/// One field of every example: f32 or i64 values, `numel` per example.
struct FieldLayout {
  std::string name;
  std::string role; ///< "input" or "target"
  bool integer = false;
  int64_t numel = 1;
};

/// The model's fields as datasets lay them out (batch dimension first).
std::vector<FieldLayout> fieldLayouts(const ModelInfo &model);

class Dataset {
public:
  explicit Dataset(std::vector<FieldLayout> fields) : fields_(std::move(fields)) {}
  virtual ~Dataset() = default;

  virtual int64_t size() const = 0;
  /// Writes examples rows[0..n) of every field f to out[f], one after the
  /// other (f32 or int64_t by the field's type). Rows are valid indices.
  virtual void fill(const int64_t *rows, int64_t n, void *const *out) const = 0;
  /// The class label of example `row` when field `field` holds classes.
  virtual int64_t label(int64_t row, size_t field) const = 0;
  /// What example `row` is called where it came from (a clip's file), or
  /// "" for examples without names (rows of a table, items of an array).
  virtual std::string name(int64_t) const { return {}; }

  const std::vector<FieldLayout> &fields() const { return fields_; }

private:
  std::vector<FieldLayout> fields_;
};

/// Examples held in memory, field by field (sine, inline, tensors, csv).
class TableDataset : public Dataset {
public:
  /// One column per field: floats for f32 fields, ints for i64 fields,
  /// `count` examples of the field's numel each.
  struct Column {
    std::vector<float> floats;
    std::vector<int64_t> ints;
  };
  TableDataset(std::vector<FieldLayout> fields, std::vector<Column> columns, int64_t count);

  int64_t size() const override { return count_; }
  void fill(const int64_t *rows, int64_t n, void *const *out) const override;
  int64_t label(int64_t row, size_t field) const override;
  std::string name(int64_t row) const override {
    return names_.empty() ? std::string() : names_[static_cast<size_t>(row)];
  }
  /// Names the examples, one each.
  void setNames(std::vector<std::string> names) { names_ = std::move(names); }

private:
  std::vector<Column> columns_;
  int64_t count_;
  std::vector<std::string> names_;
};

/// Some examples of another dataset, in the given order.
class SubsetDataset : public Dataset {
public:
  SubsetDataset(std::shared_ptr<const Dataset> parent, std::vector<int64_t> rows);
  int64_t size() const override { return static_cast<int64_t>(rows_.size()); }
  void fill(const int64_t *rows, int64_t n, void *const *out) const override;
  int64_t label(int64_t row, size_t field) const override;
  std::string name(int64_t row) const override {
    return parent_->name(rows_[static_cast<size_t>(row)]);
  }

private:
  std::shared_ptr<const Dataset> parent_;
  std::vector<int64_t> rows_;
  mutable std::vector<int64_t> mapped_;
};

/// The training and test examples of a run; `test` may be null (no test
/// data: evaluation then uses the training examples).
struct Splits {
  std::shared_ptr<const Dataset> train, test;
  std::string description; ///< e.g. "120 training, 30 test examples"
  /// Class names the data itself gave (a csv class column of names).
  std::vector<std::string> classes;
};

/// Splits `all` into training and test examples: a fraction `testFraction`
/// of them, drawn with `seed`, goes to test; with a class field
/// (`classField` >= 0, `classes` classes) the draw is stratified: each
/// class gives its share. Both keep the original order of the examples.
Splits splitDataset(std::shared_ptr<const Dataset> all, double testFraction, uint64_t seed,
                    int classField, int64_t classes);

/// The input buffers of one batch, in the model's field order.
class Batch {
public:
  Batch(const std::vector<FieldLayout> &fields, int64_t capacity);
  /// Fills the batch with examples rows[0..n) of `data`.
  void fill(const Dataset &data, const int64_t *rows, int64_t n);
  int64_t size() const { return n_; }
  const float *const *inputs() const { return pointers_.data(); }
  const int64_t *ints(size_t field) const {
    return reinterpret_cast<const int64_t *>(pointers_[field]);
  }
  const float *floats(size_t field) const { return pointers_[field]; }

private:
  std::vector<std::vector<float>> floats_;
  std::vector<std::vector<int64_t>> ints_;
  std::vector<const float *> pointers_;
  std::vector<void *> out_;
  int64_t n_ = 0;
};

/// What identifies a data set for --resume: its size and a hash of 64
/// examples spread over it (every field, in order), e.g. "60000 examples,
/// sample 3f2a9c0d1e2b4a5f". Cheap for any size; another file, order or
/// split gives another fingerprint.
std::string dataFingerprint(const Dataset &data);

} // namespace netc::rt
