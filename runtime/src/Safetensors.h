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
};

void writeSafetensors(const std::string &path, const std::vector<TensorView> &tensors,
                      const std::map<std::string, std::string> &metadata);

struct LoadedTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

std::map<std::string, LoadedTensor> readSafetensors(const std::string &path);

/// Copies the parameters of `model` from a weights file into `persist`. The
/// file must hold exactly the model's parameters, with their shapes.
void loadWeights(const ModelInfo &model, const std::string &path, float *persist);

/// Writes the model's parameters (and nothing else) to `path`.
void saveWeights(const ModelInfo &model, const std::string &path, const float *persist);

} // namespace netc::rt
