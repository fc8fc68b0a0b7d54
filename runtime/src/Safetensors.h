// Safetensors.h - reading and writing weights files in the safetensors
// format (https://github.com/huggingface/safetensors): an 8-byte little-
// endian header length, a JSON header, then the raw tensor data.
//
// Writes are atomic: a temporary file beside the target, fsync, rename,
// fsync of the directory. Reads check everything and throw Error with the
// file's name and what is wrong.
#pragma once

#include "ModelInfo.h"

#include <map>
#include <string>
#include <vector>

namespace netc::rt {

struct TensorView {
  std::string name;
  std::vector<int64_t> shape;
  const float *data;
  bool integer = false; ///< written as I64 (whole numbers kept as f32)
};

void writeSafetensors(const std::string &path, const std::vector<TensorView> &tensors,
                      const std::map<std::string, std::string> &metadata);

struct LoadedTensor {
  std::vector<int64_t> shape;
  std::string dtype;         ///< "F32" or "I64"
  std::vector<float> data;   ///< F32
  std::vector<int64_t> ints; ///< I64
};

/// The tensors of a file; its __metadata__ too if `metadata` is given. With
/// `headerOnly`, names, dtypes and shapes only (no data is read).
std::map<std::string, LoadedTensor>
readSafetensors(const std::string &path, std::map<std::string, std::string> *metadata = nullptr,
                bool headerOnly = false);

/// Throws Error unless `path` may be replaced by this model's weights (or,
/// with `checkpoint`, its checkpoint): it does not exist, or it is a
/// regular file holding exactly this model's parameters (its checkpoint).
/// Another model's file, a data file or anything else is never replaced.
void checkReplaceable(const ModelInfo &model, const std::string &path, bool checkpoint);

/// Copies the parameters and buffers of `model` (its state_dict) from a
/// weights file into `persist`. The file must hold exactly those tensors,
/// with their shapes.
void loadWeights(const ModelInfo &model, const std::string &path, float *persist);

/// Writes the model's parameters and buffers (and nothing else) to `path`.
void saveWeights(const ModelInfo &model, const std::string &path, const float *persist);

/// A training checkpoint: parameters, buffers, optimizer state (optim.<param>.<slot>)
/// and, as __metadata__, where training stands.
struct CheckpointState {
  int64_t epoch = 0;    ///< the epoch in progress (0-based)
  int64_t position = 0; ///< batches of it already done
  int64_t step = 0;     ///< training steps done
  uint64_t seed = 0;
  double epochLossSum = 0; ///< sum of batch loss * batch size so far this epoch
  int64_t epochSeen = 0;   ///< examples so far this epoch
  int64_t batch = 0;       ///< the run's batch size (0: not recorded)
  bool shuffle = true;     ///< whether its epochs are shuffled
  std::string data;        ///< the training set's dataFingerprint ("": not recorded)
  int64_t shards = 0;      ///< shards per batch (--distributed; 0: train_step)
};

/// A fingerprint of the model's structure (tensor names and shapes,
/// optimizer, data): checkpoints of other models are refused.
std::string modelFingerprint(const ModelInfo &model);

void saveCheckpoint(const ModelInfo &model, const std::string &path, const float *persist,
                    const CheckpointState &state);
CheckpointState loadCheckpoint(const ModelInfo &model, const std::string &path, float *persist);

} // namespace netc::rt
