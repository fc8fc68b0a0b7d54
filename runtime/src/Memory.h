// Memory.h - 64-byte aligned, zeroed buffers, and the scratch arena the
// generated code works in.
#pragma once

#include "ModelInfo.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace netc::rt {

struct AlignedFree {
  void operator()(void *p) const { std::free(p); }
};

template <typename T> using Aligned = std::unique_ptr<T[], AlignedFree>;

template <typename T> Aligned<T> allocate(size_t count) {
  size_t bytes = (std::max<size_t>(count * sizeof(T), 64) + 63) / 64 * 64;
  void *p = std::aligned_alloc(64, bytes);
  if (!p)
    throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, bytes);
  return Aligned<T>(static_cast<T *>(p));
}

/// The scratch arena (of the training step, or of --gradcheck's double-
/// precision twin). With NETC_POISON_SCRATCH=1 in the environment (the
/// tests set it) every byte starts as 0xFF, a NaN in every float: a kernel
/// that reads scratch no kernel wrote shows up as a NaN loss or gradient
/// instead of passing on the zeros of fresh memory.
inline Aligned<char> allocateScratch(size_t bytes) {
  Aligned<char> p = allocate<char>(bytes);
  const char *poison = std::getenv("NETC_POISON_SCRATCH");
  if (poison && std::string(poison) == "1")
    std::memset(p.get(), 0xFF, (std::max<size_t>(bytes, 64) + 63) / 64 * 64);
  return p;
}

} // namespace netc::rt
