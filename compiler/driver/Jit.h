// Jit.h - `netc run`: the emitted program's trainer on a model compiled in
// memory, with no files and no linker.
#pragma once

#include <llvm/IR/Module.h>

#include <string>
#include <vector>

namespace netc {

/// Compiles `module` (emitModule's, for this machine, not yet optimized) at
/// `level` with LLVM's ORC JIT into this process and runs the trainer
/// (netc_main) on its descriptor with `args` (args[0]: the program name the
/// files are named after). The parts the first training step needs are
/// compiled first, on every core; the other entry points (forward,
/// predict, the gradients) while training runs, and a call that comes
/// before they are ready waits for them. With `timings`, says on stderr
/// when each group was ready, in seconds since netc started. Returns the
/// trainer's exit status.
int runModule(llvm::Module &module, const std::string &modelName, int level,
              const std::vector<std::string> &args, bool timings);

} // namespace netc
