// Idx.h - IDX files (gzipped or not) and the idx data source.
//
// The format (MNIST's): two zero bytes, a type byte (0x08 u8, 0x09 i8,
// 0x0b i16, 0x0c i32, 0x0d f32, 0x0e f64), the number of dimensions, each
// dimension as a big-endian 32-bit integer, then the data, big-endian. Every
// check failure throws Error naming the file and what is wrong.
#pragma once

#include "Dataset.h"

#include <cstdint>
#include <string>
#include <vector>

namespace netc::rt {

enum class IdxType : uint8_t {
  U8 = 0x08,
  I8 = 0x09,
  I16 = 0x0b,
  I32 = 0x0c,
  F32 = 0x0d,
  F64 = 0x0e
};

struct IdxArray {
  IdxType type = IdxType::U8;
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data; ///< row-major, native byte order

  size_t elementBytes() const;
  /// Elements per item (the product of the dimensions after the first).
  int64_t itemSize() const;
  /// Element i as a double.
  double at(size_t i) const;
  /// Item `item` as floats: u8 divided by 255 (as torchvision's ToTensor),
  /// every other type converted as it is.
  void itemToFloat(int64_t item, float *out) const;
};

/// dst[i] = src[i] / 255 in float, as torchvision's ToTensor (what
/// itemToFloat does to u8 items): the same bits with AVX2 where the CPU has
/// it as without (`wide` false: never, for tests).
void scaleBytes(const uint8_t *src, float *dst, size_t count, bool wide = true);

/// Reads an IDX file of any element type and rank, plain or gzipped.
IdxArray readIdx(const std::string &path);

/// `dir/name`, or `dir/name.gz` if only that exists; throws if neither does
/// (`hint`: how to get the data, for a missing directory).
std::string findIdxFile(const std::string &dir, const std::string &name,
                        const std::string &hint = "");

/// An input array and a target array of the same item count, laid out as
/// the model's two fields (the input: floats; the target: class labels
/// below `classes`, or floats when the target field is f32).
class IdxDataset : public Dataset {
public:
  IdxDataset(std::vector<FieldLayout> fields, IdxArray inputs, IdxArray targets, int64_t classes,
             const std::string &inputsPath, const std::string &targetsPath);
  int64_t size() const override { return count_; }
  void fill(const int64_t *rows, int64_t n, void *const *out) const override;
  int64_t label(int64_t row, size_t field) const override;

private:
  friend struct IdxFill;
  IdxArray inputs_, targets_;
  size_t inputField_ = 0, targetField_ = 1;
  int64_t count_ = 0;
};

} // namespace netc::rt
