// LayoutKernels.cpp - stack and slice along the last axis, transposes and
// frames: pure data movement (frames' adjoint adds overlapping frames).
#include "compiler/codegen/Kernels.h"

#include "compiler/graph/Ops.h"

namespace netc {

namespace {

/// A layout kernel's independent units: matrices of a transpose, signals
/// of frames and of their adjoint; the elements each unit moves.
struct LayoutUnits {
  llvm::Value *count;
  int64_t elements;
};

/// Frames and their adjoint: the signals' shape [.., L] and the frames'
/// [.., T, n] (operand and result, one way or the other).
std::pair<const Shape *, const Shape *> framing(const EmitContext &ctx, const Node &n) {
  const Shape *in = &ctx.graph.shape(n.inputs[0]);
  return n.op == Op::Frames ? std::pair{in, &n.shape} : std::pair{&n.shape, in};
}

/// The product of the two last dimensions.
int64_t lastTwo(const Shape &s) { return s.dims[s.rank() - 1] * s.dims[s.rank() - 2]; }

LayoutUnits layoutUnits(const EmitContext &ctx, const Node &n) {
  if (n.op == Op::Transpose) {
    const Shape &in = ctx.graph.shape(n.inputs[0]);
    return {ctx.b.CreateUDiv(ctx.numel(in), ctx.i64(lastTwo(in))), lastTwo(in)};
  }
  auto [signal, framed] = framing(ctx, n);
  return {ctx.b.CreateUDiv(ctx.numel(*signal), ctx.i64(signal->dims.back())), lastTwo(*framed)};
}

} // namespace

llvm::Value *layoutChunkCount(const EmitContext &ctx, const Kernel &kernel) {
  const Node &n = ctx.graph.node(kernel.nodes.front());
  LayoutUnits u = layoutUnits(ctx, n);
  // One chunk per ~64K elements moved.
  llvm::Value *byWork =
      ctx.b.CreateLShr(ctx.b.CreateMul(u.count, ctx.i64(u.elements)), ctx.i64(16));
  return ctx.chunkCount(byWork, ctx.chunkUnits(u.count, 1));
}

void emitLayoutChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                     llvm::Value *chunks) {
  auto &b = ctx.b;
  ValueId out = kernel.nodes.front();
  const Node &n = ctx.graph.node(out);
  LayoutUnits u = layoutUnits(ctx, n);
  auto [lo, hi] = ctx.chunkRange(chunk, chunks, u.count, 1);
  auto units = [&](const std::function<void(llvm::Value *)> &body) {
    ctx.loop(
        b.CreateSub(hi, lo), [&](llvm::Value *i) { body(b.CreateAdd(lo, i)); }, "unit");
  };
  if (n.op == Op::Transpose) {
    // [.., R, C] -> [.., C, R], read row by row.
    const Shape &in = ctx.graph.shape(n.inputs[0]);
    int64_t rows = in.dims[in.rank() - 2], cols = in.dims[in.rank() - 1];
    units([&](llvm::Value *m) {
      llvm::Value *base = b.CreateMul(m, ctx.i64(rows * cols));
      ctx.loop(
          ctx.i64(rows),
          [&](llvm::Value *r) {
            ctx.loop(
                ctx.i64(cols),
                [&](llvm::Value *c) {
                  llvm::Value *from =
                      b.CreateAdd(base, b.CreateAdd(b.CreateMul(r, ctx.i64(cols)), c));
                  llvm::Value *to =
                      b.CreateAdd(base, b.CreateAdd(b.CreateMul(c, ctx.i64(rows)), r));
                  ctx.store(out, to, ctx.load(n.inputs[0], from));
                },
                "c");
          },
          "r");
    });
    return;
  }
  // Frames and their adjoint: signals of `length`, `frames` frames of
  // `width` samples `hop` apart, over the signal reflect-padded by pl.
  const std::vector<int64_t> &w = n.attrs.window;
  bool grad = n.op == Op::FramesGrad;
  auto [signal, framed] = framing(ctx, n);
  int64_t length = signal->dims.back(), width = w[0], hop = w[1], pl = w[2];
  int64_t frames = framed->dims[framed->rank() - 2];
  units([&](llvm::Value *m) {
    llvm::Value *x0 = b.CreateMul(m, ctx.i64(length));
    llvm::Value *f0 = b.CreateMul(m, ctx.i64(frames * width));
    if (grad)
      ctx.loop(ctx.i64(length), [&](llvm::Value *i) {
        ctx.store(out, b.CreateAdd(x0, i), llvm::ConstantFP::get(ctx.fp(), 0.0));
      });
    ctx.loop(
        ctx.i64(frames),
        [&](llvm::Value *t) {
          ctx.loop(
              ctx.i64(width),
              [&](llvm::Value *k) {
                // i = p - pl for the padded position p, reflected at both ends.
                llvm::Value *i =
                    b.CreateSub(b.CreateAdd(b.CreateMul(t, ctx.i64(hop)), k), ctx.i64(pl));
                i = b.CreateSelect(b.CreateICmpSLT(i, ctx.i64(0)), b.CreateNeg(i), i);
                i = b.CreateSelect(b.CreateICmpSGE(i, ctx.i64(length)),
                                   b.CreateSub(ctx.i64(2 * (length - 1)), i), i);
                llvm::Value *x = b.CreateAdd(x0, i);
                llvm::Value *f = b.CreateAdd(f0, b.CreateAdd(b.CreateMul(t, ctx.i64(width)), k));
                if (grad)
                  ctx.store(out, x, b.CreateFAdd(ctx.load(out, x), ctx.load(n.inputs[0], f)));
                else
                  ctx.store(out, f, ctx.load(n.inputs[0], x));
              },
              "k");
        },
        "t");
  });
}

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
