// Codegen.h - lowers a compiled model to one LLVM module (which Parallel.h
// cuts into parts to optimize on every core).
//
// The module defines, per the runtime contract (runtime/include/netc/runtime.h),
// one external symbol: the model descriptor netc_model_<name> (struct
// netc_model), which holds the model description (JSON the trainer reads at
// start-up), the buffer sizes, the entry points, all internal, and C tables
// of the tensors, fields and hparams (for the C library, netc.h):
//   <name>.init        fills parameters from their initializers, zeroes state
//   <name>.train_step  forward + backward + optimizer update, returns the loss
//   <name>.forward     forward only, returns the loss
//   <name>.predict     the model's output from its inputs (if it names one)
//   <name>.gradients, <name>.gradients_f64   raw gradients, f32 and f64
// With `withMain`, also main(), which runs the trainer on the descriptor.
// Each entry point is one function; kernels are emitted inline or as chunk
// functions, in schedule order, by the lowerings of Kernels.h. Generated code
// calls nothing but the runtime's RNG and thread pool, and libm.
#pragma once

#include "compiler/codegen/Target.h"
#include "compiler/transforms/Pipeline.h"

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <memory>

namespace netc {

std::unique_ptr<llvm::Module> emitModule(llvm::LLVMContext &context,
                                         const CompiledModel &model,
                                         const TargetInfo &target, bool withMain);

/// The JSON model description the descriptor points to.
std::string describeModel(const CompiledModel &model, const TargetInfo &target);

/// The descriptor's symbol: netc_model_ and the model's name, every
/// character that may not appear in a C identifier replaced by '_'.
std::string modelSymbol(const std::string &modelName);

/// The C header of the model's library (--emit=lib): typed wrappers over
/// netc.h with the model's name as prefix, its sizes and shapes. `source`
/// names the .nn file in the header's first line.
std::string libraryHeader(const CompiledModel &model, const std::string &source);

/// Scratch bytes every f32 entry point but gradients fits in.
struct ScratchSize {
  int64_t fixedBytes = 0, batchBytesPerN = 0;
};
ScratchSize scratchSize(const CompiledModel &model);

} // namespace netc
