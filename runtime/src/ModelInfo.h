// ModelInfo.h - a model descriptor and its description, as C++ data.
#pragma once

#include "netc/runtime.h"

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace netc::rt {

/// A user-facing failure: printed as "error: <what>", exit status 1.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// An error every process of a group meets alike, because it follows from
/// the flags and the model alone: rank 0 reports it and ends the group
/// (the others would only repeat it, and could end the group before rank 0
/// had said why).
struct CommonError : Error {
  using Error::Error;
};

constexpr int64_t kBatch = NETC_BATCH_DIM;

/// "1 step", "2 steps": a count and its noun, in the plural unless 1
/// (`plural`: when it is not the noun and an s).
inline std::string counted(int64_t n, const std::string &noun, const std::string &plural = "") {
  return std::to_string(n) + " " + (n == 1 ? noun : plural.empty() ? noun + "s" : plural);
}

/// Npad of the contract, by which per-example scratch offsets are scaled.
inline int64_t paddedBatch(int64_t n) { return netc_padded_batch(n); }

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape; ///< kBatch for the batch dimension
  int64_t offset = 0;         ///< floats into the persistent block
  bool integer = false;       ///< kept as f32, saved as I64 (num_batches_tracked)
  int64_t numel() const;
  /// Its safetensors dtype: "I64" or "F32".
  const char *fileType() const { return integer ? "I64" : "F32"; }
  std::string shapeString() const;
};

struct FieldInfo {
  std::string name, role, dtype;
  std::vector<int64_t> shape;
};

/// Where the forward pass leaves one of its outputs.
struct OutputLocation {
  std::vector<int64_t> shape;  ///< kBatch for the batch dimension
  std::string region;          ///< scratch, persist, input or const
  int64_t fixedBytes = 0, perNpadBytes = 0; ///< scratch + fixed + perNpad * Npad
  int64_t offset = 0;          ///< persist: floats
  int64_t field = 0;           ///< input: the field
  double value = 0;            ///< const
};

/// The elements of a tensor of `shape` (kBatch for the batch dimension)
/// with `n` examples.
int64_t elementsOf(const std::vector<int64_t> &shape, int64_t n);

/// The values an entry point left at `at`, having run on `n` examples
/// with these blocks; a constant's is written to `constant`.
const float *valuesAt(const OutputLocation &at, const char *scratch, const float *persist,
                      const float *const *inputs, int64_t n, float &constant);

/// `print expr`: the expression as written, and where its value is.
struct PrintInfo {
  std::string text;
  OutputLocation at;
};

struct ReportPiece {
  std::string text;
  int param = -1;
  int64_t offset = 0;
  bool computed = false; ///< an expression the forward pass leaves at `at`
  OutputLocation at;
};

/// A value of the training step as the probe leaves it (--check-finite's
/// diagnosis): the operation computing it and its place in the .nn file.
struct ProbeValue {
  std::string op, origin, label, phase; ///< "log", "log", "z", "forward"
  int64_t line = 0, column = 0;
  OutputLocation at;
};

/// A kernel of the training step, for --profile.
struct ProfileKernel {
  int index = 0;           ///< netc_rt_profile_mark's argument
  std::string name, ops;   ///< "kernel 3 matmul", "matmul, add, relu"
  std::string label;       ///< the .nn name of a value it computes, or ""
  double flops = 0, flopsPerN = 0; ///< per call: flops + flopsPerN * N
};

struct ModelInfo {
  const netc_model *code = nullptr; ///< the generated entry points
  std::string name;
  std::string cpu;
  std::vector<std::string> features;
  std::vector<TensorInfo> params;
  /// Model tensors that are not trained (batch norm's running statistics):
  /// saved with the parameters, as PyTorch's state_dict holds them.
  std::vector<TensorInfo> buffers;
  std::vector<TensorInfo> states;
  int64_t persistentFloats = 0;
  int64_t maxChunks = 1; ///< no kernel splits into more: more threads idle
  int64_t scratchFixedBytes = 0;
  int64_t scratchBatchBytesPerN = 0;
  int64_t gradientsFixedBytes = 0; ///< for gradients: its own scratch
  int64_t gradientsBatchBytesPerN = 0;
  int64_t scratch64FixedBytes = 0; ///< for gradients_f64
  int64_t scratch64BatchBytesPerN = 0;
  /// Where gradients leaves the branches it took, which gradients_f64
  /// reads after the fields (runtime.h).
  std::vector<OutputLocation> decisions;
  std::string dataSource;
  /// The source's options, with defaults filled in: numbers and texts.
  std::map<std::string, double> dataNumbers;
  std::map<std::string, std::string> dataTexts;
  std::string dataPath;  ///< the default of --data: the source's file or folder
  int64_t batch = 0;     ///< examples per training step; 0: the whole set at once
  /// inline: the tensors written in the .nn file, by name.
  std::vector<std::pair<std::string, std::vector<double>>> inlineTensors;
  std::vector<std::string> classes; ///< class names by label (may be empty)
  std::vector<FieldInfo> fields;
  /// The model's output: what predict writes, and where forward leaves it.
  struct Prediction {
    bool present = false;
    /// Classifiers: logits, probabilities or log_probabilities over
    /// `classes` classes; binary classifiers: probability or logit (one
    /// value); regressors: values.
    std::string kind;
    int64_t classes = 0;
    int64_t width = 0;  ///< values per example
    int target = -1;    ///< the field it is compared with, or -1
    OutputLocation at;  ///< where forward leaves it
    bool classifier() const {
      return kind == "logits" || kind == "probabilities" || kind == "log_probabilities";
    }
    bool binary() const { return kind == "probability" || kind == "logit"; }
  } prediction;
  double lr = 0;
  /// The hparams (the learning rate, then the step's: netc_step_hparams
  /// sets those from the descriptor's table).
  int64_t hparamCount = 1;
  std::string optimizer;
  int64_t steps = 0;
  int64_t epochs = 0;
  int64_t reportEvery = 0;
  uint64_t seed = 0;
  std::vector<ReportPiece> report;
  std::vector<PrintInfo> prints;
  std::vector<ProfileKernel> profile;
  std::vector<ProbeValue> probe; ///< in the order the probe computes them
  int64_t probeFixedBytes = 0, probeBatchBytesPerN = 0;
  std::string source; ///< the .nn file netc compiled
  bool trains = true;     ///< false: no parameters; the program evaluates and prints
  /// The fewest examples a training step may have (2 with batch norm over
  /// [N, C]: one example has no variance).
  int64_t minBatch = 1;
  bool lossGiven = true;  ///< the .nn file has a loss statement

  /// A numeric or text option of the data source; throws if it is missing.
  double option(const std::string &key) const;
  const std::string &text(const std::string &key) const;
};

/// Checks the descriptor and parses its description; a mismatch is an Error.
ModelInfo parseModelInfo(const netc_model *model);

} // namespace netc::rt
