// MatMulKernel.cpp - a plain matrix product, C = op(A) · op(B).
//
// Loop order follows the operand layouts so the innermost loop is unit
// stride: with B transposed (a linear layer's forward pass) it is a dot
// product per output; otherwise C's row is updated along B's row. This is
// the simple baseline; a blocked, register-tiled kernel replaces this
// function alone.
#include "compiler/codegen/Kernels.h"

namespace netc {

void emitMatMulKernel(const EmitContext &ctx, const Kernel &kernel) {
  auto &b = ctx.b;
  ValueId c = kernel.nodes.front();
  const Node &n = ctx.graph.node(c);
  ValueId a = n.inputs[0], bm = n.inputs[1];
  const Shape &as = ctx.graph.shape(a), &bs = ctx.graph.shape(bm);
  llvm::Value *m = ctx.extent(n.shape.dims[0]);
  llvm::Value *cols = ctx.extent(n.shape.dims[1]);
  llvm::Value *depth = ctx.extent(n.attrs.transA ? as.dims[0] : as.dims[1]);
  llvm::Value *lda = ctx.extent(as.dims[1]);
  llvm::Value *ldb = ctx.extent(bs.dims[1]);

  // Element (row, col) of op(A) and op(B).
  auto loadA = [&](llvm::Value *row, llvm::Value *k) {
    return n.attrs.transA ? ctx.load(a, b.CreateAdd(b.CreateMul(k, lda), row))
                          : ctx.load(a, b.CreateAdd(b.CreateMul(row, lda), k));
  };
  auto loadB = [&](llvm::Value *k, llvm::Value *col) {
    return n.attrs.transB ? ctx.load(bm, b.CreateAdd(b.CreateMul(col, ldb), k))
                          : ctx.load(bm, b.CreateAdd(b.CreateMul(k, ldb), col));
  };
  auto cIndex = [&](llvm::Value *row, llvm::Value *col) {
    return b.CreateAdd(b.CreateMul(row, cols), col);
  };

  if (n.attrs.transB && !n.attrs.transA) {
    llvm::IRBuilder<> entry(&ctx.fn->getEntryBlock(), ctx.fn->getEntryBlock().begin());
    llvm::AllocaInst *acc = entry.CreateAlloca(ctx.fp());
    ctx.loop(m, [&](llvm::Value *i) {
      ctx.loop(cols, [&](llvm::Value *j) {
        b.CreateStore(llvm::ConstantFP::get(ctx.fp(), 0.0), acc);
        ctx.loop(depth, [&](llvm::Value *k) {
          llvm::Value *sum = b.CreateFAdd(b.CreateLoad(ctx.fp(), acc),
                                          b.CreateFMul(loadA(i, k), loadB(k, j)));
          llvm::cast<llvm::Instruction>(sum)->setHasAllowReassoc(true);
          b.CreateStore(sum, acc);
        }, "k");
        ctx.store(c, cIndex(i, j), b.CreateLoad(ctx.fp(), acc));
      }, "j");
    }, "i");
    return;
  }
  ctx.loop(m, [&](llvm::Value *i) {
    ctx.loop(cols, [&](llvm::Value *j) {
      ctx.store(c, cIndex(i, j), llvm::ConstantFP::get(ctx.fp(), 0.0));
    }, "j");
    ctx.loop(depth, [&](llvm::Value *k) {
      llvm::Value *aik = loadA(i, k);
      ctx.loop(cols, [&](llvm::Value *j) {
        llvm::Value *at = cIndex(i, j);
        ctx.store(c, at, b.CreateFAdd(ctx.load(c, at), b.CreateFMul(aik, loadB(k, j))));
      }, "j");
    }, "k");
  }, "i");
}

} // namespace netc
