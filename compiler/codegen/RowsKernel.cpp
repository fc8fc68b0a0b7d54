// RowsKernel.cpp - softmax and log-softmax along the last axis, and the
// pick/scatter of class labels.
//
// Per row: m = max(x); s = sum(exp(x - m)); then softmax = exp(x - m) / s,
// log_softmax = x - m - log(s). Subtracting the maximum keeps exp() from
// overflowing, so large logits are safe.
#include "compiler/codegen/Kernels.h"

#include <llvm/IR/Intrinsics.h>

namespace netc {

void emitRowsKernel(const EmitContext &ctx, const Kernel &kernel) {
  auto &b = ctx.b;
  ValueId out = kernel.nodes.front();
  const Node &n = ctx.graph.node(out);
  ValueId in = n.inputs[0];
  int64_t cols = n.shape.dims.back();
  llvm::Value *rows = b.CreateUDiv(ctx.numel(n.shape), ctx.i64(cols));
  llvm::IRBuilder<> entry(&ctx.fn->getEntryBlock(), ctx.fn->getEntryBlock().begin());
  llvm::AllocaInst *maxSlot = entry.CreateAlloca(ctx.fp());
  llvm::AllocaInst *sumSlot = entry.CreateAlloca(ctx.fp());
  auto exp = [&](llvm::Value *x) { return b.CreateUnaryIntrinsic(llvm::Intrinsic::exp, x); };

  ctx.loop(rows, [&](llvm::Value *row) {
    llvm::Value *base = b.CreateMul(row, ctx.i64(cols));
    auto at = [&](llvm::Value *j) { return b.CreateAdd(base, j); };
    b.CreateStore(ctx.load(in, base), maxSlot);
    ctx.loop(ctx.i64(cols), [&](llvm::Value *j) {
      llvm::Value *m = b.CreateMaxNum(b.CreateLoad(ctx.fp(), maxSlot), ctx.load(in, at(j)));
      b.CreateStore(m, maxSlot);
    }, "j");
    llvm::Value *max = b.CreateLoad(ctx.fp(), maxSlot);
    b.CreateStore(llvm::ConstantFP::get(ctx.fp(), 0.0), sumSlot);
    ctx.loop(ctx.i64(cols), [&](llvm::Value *j) {
      llvm::Value *e = exp(b.CreateFSub(ctx.load(in, at(j)), max));
      auto *sum = llvm::cast<llvm::Instruction>(b.CreateFAdd(b.CreateLoad(ctx.fp(), sumSlot), e));
      sum->setHasAllowReassoc(true);
      b.CreateStore(sum, sumSlot);
    }, "j");
    llvm::Value *sum = b.CreateLoad(ctx.fp(), sumSlot);
    llvm::Value *shift = n.op == Op::LogSoftmax
                             ? b.CreateFAdd(max, b.CreateUnaryIntrinsic(llvm::Intrinsic::log, sum))
                             : nullptr;
    llvm::Value *inverse = n.op == Op::Softmax
                               ? b.CreateFDiv(llvm::ConstantFP::get(ctx.fp(), 1.0), sum)
                               : nullptr;
    ctx.loop(ctx.i64(cols), [&](llvm::Value *j) {
      llvm::Value *x = ctx.load(in, at(j));
      llvm::Value *y = n.op == Op::LogSoftmax ? b.CreateFSub(x, shift)
                                              : b.CreateFMul(exp(b.CreateFSub(x, max)), inverse);
      ctx.store(out, at(j), y);
    }, "j");
  }, "row");
}

void emitGatherKernel(const EmitContext &ctx, const Kernel &kernel) {
  auto &b = ctx.b;
  ValueId out = kernel.nodes.front();
  const Node &n = ctx.graph.node(out);
  ValueId values = n.inputs[0], labels = n.inputs[1];
  auto label = [&](llvm::Value *row) {
    return b.CreateLoad(ctx.i64(), b.CreateInBoundsGEP(ctx.i64(), ctx.pointer(labels), row));
  };
  if (n.op == Op::Pick) {
    int64_t cols = ctx.graph.shape(values).dims.back();
    ctx.loop(ctx.numel(n.shape), [&](llvm::Value *row) {
      llvm::Value *at = b.CreateAdd(b.CreateMul(row, ctx.i64(cols)), label(row));
      ctx.store(out, row, ctx.load(values, at));
    }, "row");
    return;
  }
  int64_t cols = n.attrs.k;
  llvm::Value *zero = llvm::ConstantFP::get(ctx.fp(), 0.0);
  ctx.loop(ctx.numel(ctx.graph.shape(values)), [&](llvm::Value *row) {
    llvm::Value *hit = label(row);
    llvm::Value *v = ctx.load(values, row);
    llvm::Value *base = b.CreateMul(row, ctx.i64(cols));
    ctx.loop(ctx.i64(cols), [&](llvm::Value *j) {
      ctx.store(out, b.CreateAdd(base, j), b.CreateSelect(b.CreateICmpEQ(j, hit), v, zero));
    }, "j");
  }, "row");
}

} // namespace netc
