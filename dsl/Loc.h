// Loc.h - a source range, shared by the AST and everything that points back
// into the .nn file.
#pragma once

#include <cstdint>

namespace netc::ast {

/// Byte offsets [begin, end) into the source buffer.
struct Loc {
  uint32_t begin = 0;
  uint32_t end = 0;
};

} // namespace netc::ast
