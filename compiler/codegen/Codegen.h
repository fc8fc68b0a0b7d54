// Codegen.h - lowers a compiled model to one LLVM module.
//
// The module defines, per the runtime contract (runtime/include/netc/runtime.h):
//   netc_model_json   the model description the runtime reads at start-up
//   netc_init         fills parameters from their initializers, zeroes state
//   netc_train_step   forward + backward + optimizer update, returns the loss
//   netc_forward      forward only, returns the loss
// Each entry point is one function; kernels are emitted inline, in schedule
// order, by the lowerings of Kernels.h. Generated code calls nothing but the
// runtime's RNG functions and libm.
#pragma once

#include "compiler/codegen/Target.h"
#include "compiler/transforms/Pipeline.h"

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <memory>

namespace netc {

std::unique_ptr<llvm::Module> emitModule(llvm::LLVMContext &context,
                                         const CompiledModel &model,
                                         const TargetInfo &target);

/// The JSON model description embedded as netc_model_json.
std::string describeModel(const CompiledModel &model, const TargetInfo &target);

} // namespace netc
