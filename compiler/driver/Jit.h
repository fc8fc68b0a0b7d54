// Jit.h - `netc run`: the emitted program's trainer on a model compiled in
// memory, with no files and no linker.
#pragma once

#include <string>
#include <vector>

namespace netc {

/// Loads `object` (what --emit=obj would write) into this process with
/// LLVM's ORC JIT, binds its calls to the runtime linked into netc (the
/// thread pool, random numbers) and to libc/libm, and runs the trainer
/// (netc_main) on the descriptor `symbol` with `args` (args[0]: the program
/// name the files are named after). Returns the trainer's exit status.
int runObject(const std::string &object, const std::string &symbol,
              const std::vector<std::string> &args);

} // namespace netc
