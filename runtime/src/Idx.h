// Idx.h - reading MNIST-format IDX files (gzipped or not).
//
// The format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type
// byte (0x08: unsigned byte), the number of dimensions, each dimension as a
// big-endian 32-bit integer, then the data. Every check failure throws
// Error naming the file and what is wrong.
#pragma once

#include "ModelInfo.h"

#include <cstdint>
#include <string>
#include <vector>

namespace netc::rt {

struct IdxArray {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data; ///< row-major, product(dims) bytes
};

/// Reads an IDX file of unsigned bytes, plain or gzip-compressed.
IdxArray readIdx(const std::string &path);

/// Images [count, rows, cols] with their labels [count], checked against
/// each other and against the number of classes.
struct LabeledImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels; ///< stays uint8; converted per batch
  std::vector<uint8_t> labels;
};

LabeledImages loadLabeledImages(const std::string &imagesPath, const std::string &labelsPath,
                                int classes);

/// `dir/name`, or `dir/name.gz` if only that exists; throws if neither does.
std::string findIdxFile(const std::string &dir, const std::string &name);

} // namespace netc::rt
