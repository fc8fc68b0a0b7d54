// ModelInfo.h - a model descriptor and its description, as C++ data.
#pragma once

#include "netc/runtime.h"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace netc::rt {

/// A user-facing failure: printed as "error: <what>", exit status 1.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr int64_t kBatch = NETC_BATCH_DIM;

/// Npad of the contract, by which per-example scratch offsets are scaled.
inline int64_t paddedBatch(int64_t n) { return netc_padded_batch(n); }

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape; ///< kBatch for the batch dimension
  int64_t offset = 0;         ///< floats into the persistent block
  int64_t numel() const;
  std::string shapeString() const;
};

struct FieldInfo {
  std::string name, role, dtype;
  std::vector<int64_t> shape;
};

struct ReportPiece {
  std::string text;
  int param = -1;
  int64_t offset = 0;
};

struct ModelInfo {
  const netc_model *code = nullptr; ///< the generated entry points
  std::string name;
  std::string cpu;
  std::vector<std::string> features;
  std::vector<TensorInfo> params;
  std::vector<TensorInfo> states;
  int64_t persistentFloats = 0;
  int64_t maxChunks = 1; ///< no kernel splits into more: more threads idle
  int64_t scratchFixedBytes = 0;
  int64_t scratchBatchBytesPerN = 0;
  int64_t scratch64FixedBytes = 0; ///< for gradients_f64
  int64_t scratch64BatchBytesPerN = 0;
  std::string dataSource;
  std::vector<std::pair<std::string, double>> dataOptions;
  int64_t batch = 0;
  std::string dataDir;              ///< mnist: default --data
  std::string dataFile;             ///< tensors: default --data
  /// inline: the tensors written in the .nn file, by name.
  std::vector<std::pair<std::string, std::vector<float>>> inlineTensors;
  std::vector<std::string> classes; ///< mnist: names by label
  std::vector<FieldInfo> fields;
  /// Where forward leaves the model's output (mnist models).
  struct Prediction {
    bool present = false;
    std::string kind; ///< logits, probabilities or log_probabilities
    int64_t classes = 0;
    int64_t fixedBytes = 0, perNpadBytes = 0; ///< scratch + fixed + perNpad * Npad
  } prediction;
  double lr = 0;
  /// Each hparam after the learning rate is 1 - base^(step + offset).
  struct StepHParam {
    double base = 0;
    int offset = 0;
  };
  std::vector<StepHParam> stepHParams;
  std::string optimizer;
  int64_t steps = 0;
  int64_t epochs = 0;
  int64_t reportEvery = 0;
  uint64_t seed = 0;
  std::vector<ReportPiece> report;

  double option(const std::string &key) const;
};

/// Checks the descriptor and parses its description; a mismatch is an Error.
ModelInfo parseModelInfo(const netc_model *model);

} // namespace netc::rt
