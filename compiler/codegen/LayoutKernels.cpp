// LayoutKernels.cpp - stack and slice along the last axis: pure data
// movement, one loop each.
#include "compiler/codegen/Kernels.h"

namespace netc {

void emitStackKernel(const EmitContext &ctx, const Kernel &kernel) {
  auto &b = ctx.b;
  ValueId out = kernel.nodes.front();
  const Node &n = ctx.graph.node(out);
  auto parts = static_cast<int64_t>(n.inputs.size());
  ctx.loop(ctx.numel(ctx.graph.shape(n.inputs[0])), [&](llvm::Value *e) {
    for (int64_t j = 0; j < parts; ++j) {
      llvm::Value *v = ctx.isInline(n.inputs[static_cast<size_t>(j)])
                           ? ctx.inlineScalar(n.inputs[static_cast<size_t>(j)])
                           : ctx.load(n.inputs[static_cast<size_t>(j)], e);
      ctx.store(out, b.CreateAdd(b.CreateMul(e, ctx.i64(parts)), ctx.i64(j)), v);
    }
  });
}

void emitSliceKernel(const EmitContext &ctx, const Kernel &kernel) {
  auto &b = ctx.b;
  ValueId out = kernel.nodes.front();
  const Node &n = ctx.graph.node(out);
  int64_t last = ctx.graph.shape(n.inputs[0]).dims.back();
  ctx.loop(ctx.numel(n.shape), [&](llvm::Value *e) {
    llvm::Value *at = b.CreateAdd(b.CreateMul(e, ctx.i64(last)), ctx.i64(n.attrs.k));
    ctx.store(out, e, ctx.load(n.inputs[0], at));
  });
}

} // namespace netc
