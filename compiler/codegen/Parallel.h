// Parallel.h - compiling one model's module on several threads.
//
// LLVM's optimizer and code generator take most of a compile (mnist.nn:
// 0.55 s in the -O3 pipeline, 0.45 s in code generation, one thread), and
// an LLVMContext serves one thread. So the module is cut into parts, each
// a self-contained module in bitcode that a worker reads into its own
// context, optimizes and compiles:
//   1. Units are the functions reached only through their address (entry
//      points, which the descriptor holds; the kernels' chunk functions,
//      which netc_rt_parallel_for calls), those never inlined (the GEMM
//      helpers) and the descriptor with main(). Units are what no
//      optimization looks into from outside: each is optimized alone as it
//      would be in the whole module.
//   2. Every other function (one the inliner may take into its callers)
//      and constant array is cloned into each part that uses it.
//   3. Units go to parts balanced by instruction count, in groups: the
//      `first` group holds what the first training step needs (the
//      descriptor, init, train_step and its kernels), the rest the other
//      entry points (netc run compiles those while training starts); the
//      optnone functions (the probe's) form one part of their own, which
//      no optimization pipeline runs over.
//   4. The ahead-of-time path links the optimized parts back into one
//      module, makes the units internal again and emits one object.
// Each function is optimized and compiled as it is in the whole module,
// so the code is the same whichever way it is put together (the JIT and
// the linked program give the same bits: test/e2e/jit.test).
#pragma once

#include "compiler/codegen/Target.h"

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace netc {

struct ModulePart {
  std::string bitcode;              ///< the part's module, before optimization
  bool first = false;               ///< needed by the first training step
  /// Only optnone functions (the probe's): run through no optimization
  /// pipeline at all (compileParts uses level 0 for it).
  bool unoptimized = false;
  std::vector<std::string> defines; ///< the units it defines
};

/// Cuts `module` (emitModule's, not yet optimized) into parts: at most
/// `perGroup` in each group. `modelName` names the entry points.
std::vector<ModulePart> splitModule(llvm::Module &module, const std::string &modelName,
                                    int perGroup);

/// Runs `work(i)` for i in [0, count) on up to `threads` threads.
void runParallel(size_t count, int threads, const std::function<void(size_t)> &work);

/// A part optimized at `level` for `cpu`: its optimized module's bitcode,
/// or with `object` its object code.
llvm::Expected<std::string> compilePart(const std::string &bitcode, const std::string &cpu,
                                        int level, bool object);

/// compilePart for each of `parts` on every core, results in order; the
/// first error, if any.
llvm::Error compileParts(const std::vector<const ModulePart *> &parts, const std::string &cpu,
                         int level, bool object, std::vector<std::string> &results);

/// The optimized parts linked into one module in `context`, every unit
/// internal again but the descriptor `keep` and main(), the functions in
/// the order of `order` (the unsplit module's names; others after them).
llvm::Expected<std::unique_ptr<llvm::Module>>
joinParts(llvm::LLVMContext &context, const std::vector<std::string> &bitcodes,
          const std::string &keep, const std::vector<std::string> &order);

/// The names of a module's functions, in order.
std::vector<std::string> functionOrder(const llvm::Module &module);

/// The threads worth using for parts: the CPUs this process may run on.
int compileThreads();

} // namespace netc
