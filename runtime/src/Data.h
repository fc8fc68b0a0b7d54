// Data.h - the data sets an emitted program trains on, and batches of them.
#pragma once

#include "Idx.h"
#include "ModelInfo.h"

#include <vector>

namespace netc::rt {

/// A data set the whole of which is one batch (sine, inline, tensors):
/// every field in full.
struct FullBatch {
  int64_t n = 0; ///< rows (the batch dimension)
  std::vector<std::vector<float>> floats;
  std::vector<std::vector<int64_t>> ints;
  std::vector<const float *> inputs; ///< one per field, in declaration order
};

/// Builds or reads the data set (`file`: the tensors source's file). Throws
/// Error for bad options and for a file that does not match the model.
FullBatch loadFullBatch(const ModelInfo &model, const std::string &file);

/// An image classification set (mnist): the training and test splits, kept
/// as bytes and converted batch by batch.
struct ImageSplits {
  LabeledImages train, test;
};

/// Reads train-images-idx3-ubyte, train-labels-idx1-ubyte,
/// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each maybe .gz) from
/// `dir`, checking them against the model (28 x 28 images, its classes).
ImageSplits loadImageSplits(const ModelInfo &model, const std::string &dir);

/// The input buffers of one batch, in the model's field order.
class Batch {
public:
  Batch(const ModelInfo &model, int64_t capacity);
  /// Fills rows `rows` of `split`: pixels / 255 as f32, labels as i64.
  void fill(const LabeledImages &split, const int64_t *rows, int64_t n);
  int64_t size() const { return n_; }
  const float *const *inputs() const { return pointers_.data(); }
  const int64_t *labels() const { return labels_.data(); }

private:
  std::vector<std::string> fields_;
  std::vector<float> pixels_;
  std::vector<int64_t> labels_;
  std::vector<const float *> pointers_;
  int64_t n_ = 0;
};

} // namespace netc::rt
