// WindowKernel.cpp - convolutions and pooling over [N, C, H, W].
//
// Convolutions go through the GEMM kernels, image by image: with stride 1 as
// implicit GEMMs over the zero-padded image (see "implicit GEMM"), else
// through im2col columns (see "convolutions through the GEMM kernels").
// Pooling goes output position by output position, through the window in the reference
// interpreter's order (kernel row, kernel column), visiting only positions inside the image
// (padding adds nothing); max pooling whose windows tile the image has its own straight-line (and,
// 2 x 2 in f32, SIMD) code. The images are split into chunks for the thread pool; every result
// element belongs to one chunk (the weight gradient's per-chunk partial sums are added in chunk
// order), so results depend on nothing but the shapes.
#include "compiler/codegen/Kernels.h"
#include "compiler/graph/Ops.h"

#include <fmt/format.h>

#include <limits>
#include <map>
#include <optional>

namespace netc {

namespace {

/// Winograd F(2x2, 3x3)'s G (WindowKernel's Winograd section).
constexpr double kG[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

struct Dims {
  llvm::Value *n;    ///< the batch
  int64_t c, h, w;   ///< the image side [N, C, H, W]
  int64_t o, oh, ow; ///< the window side [N, O, OH, OW]
};

class WindowEmitter {
public:
  /// A value the epilogue writes to `base` at (element - first) instead of
  /// its buffer: dy of one image (pooledGradient).
  struct Redirect {
    ValueId value = kNoValue;
    llvm::Value *base = nullptr, *first = nullptr;
  };

  WindowEmitter(const EmitContext &ctx, ValueId self)
      : ctx_(ctx), b_(ctx.b), n_(ctx.graph.node(self)), self_(self) {}

  /// The chunks split the images.
  llvm::Value *outerExtent() const { return d_.n; }

  /// A convolution (or its gradient), not a pooling.
  bool convolution() const { return conv_; }

  /// Window elements one image visits: the work a chunk is sized by.
  llvm::Value *workPerOuter() const {
    int64_t perWindow = geo_.kh * geo_.kw * (conv_ ? d_.c : 1);
    return ctx_.i64((conv_ ? d_.o : d_.c) * d_.oh * d_.ow * perWindow);
  }

  void setup() {
    const Graph &g = ctx_.graph;
    const Shape *weight = nullptr;
    Shape image, windows;
    switch (n_.op) {
    case Op::Conv2d:
    case Op::MaxPool2d:
    case Op::AvgPool2d:
    case Op::MaxPool2dIndex:
    case Op::WindowTake:
      image = g.shape(n_.inputs[0]);
      windows = n_.shape;
      break;
    case Op::Conv2dGradInput:
    case Op::AvgPool2dGrad:
      image = n_.attrs.shape;
      windows = g.shape(n_.inputs[0]);
      break;
    case Op::WindowTakeGrad: // offsets, dy
      image = n_.attrs.shape;
      windows = g.shape(n_.inputs[1]);
      break;
    default: // Conv2dGradWeight: x, dy
      image = g.shape(n_.inputs[0]);
      windows = g.shape(n_.inputs[1]);
      break;
    }
    if (n_.op == Op::Conv2d || n_.op == Op::Conv2dGradInput)
      weight = &g.shape(n_.inputs[1]);
    if (n_.op == Op::Conv2dGradWeight)
      weight = &n_.shape;
    geo_ = windowGeometry(n_.op, n_.attrs, weight);
    d_ = {ctx_.batch,      image.dims[1],   image.dims[2],  image.dims[3],
          windows.dims[1], windows.dims[2], windows.dims[3]};
    conv_ = weight != nullptr;
  }

  /// The outer indices [lo, hi), as chunk `chunk`.
  void run(llvm::Value *lo, llvm::Value *hi, llvm::Value *chunk) {
    llvm::IRBuilder<> entry(&ctx_.fn->getEntryBlock(), ctx_.fn->getEntryBlock().begin());
    acc_ = entry.CreateAlloca(ctx_.fp());
    bestAt_ = entry.CreateAlloca(ctx_.i64());
    if (n_.op == Op::MaxPool2dIndex)
      bestOffset_ = entry.CreateAlloca(ctx_.i64());
    // Tiling max pooling writes every element of its windows (the rest of
    // the image only if the windows do not cover it).
    bool scatters = (n_.op == Op::Conv2dGradInput && !flipped()) || (gradient() && !tiles()) ||
                    n_.op == Op::AvgPool2dGrad;
    if (scatters) { // the gradients add into a zeroed result: this chunk's images
      int64_t part = d_.c * d_.h * d_.w;
      llvm::Value *first = b_.CreateMul(lo, c(part));
      ctx_.loop(b_.CreateMul(b_.CreateSub(hi, lo), c(part)), [&](llvm::Value *i) {
        ctx_.store(self_, add(first, i), llvm::ConstantFP::get(ctx_.fp(), 0.0));
      });
    }
    if (conv_)
      convGemm(lo, hi, chunk);
    else if (tiles())
      tiledMaxPool(lo, hi);
    else
      emitNest(lo, hi);
  }

private:
  /// ceil(a / s) for s > 0 and any sign of a.
  llvm::Value *ceilDiv(llvm::Value *a, int64_t s) {
    llvm::Value *up = b_.CreateSDiv(b_.CreateAdd(a, c(s - 1)), c(s));
    llvm::Value *down = b_.CreateNeg(b_.CreateSDiv(b_.CreateNeg(a), c(s)));
    return b_.CreateSelect(b_.CreateICmpSGE(a, c(0)), up, down);
  }

  /// The outputs o in [0, outs) whose input o * stride - pad + k lies in
  /// [0, extent): the first and how many.
  std::pair<llvm::Value *, llvm::Value *>
  outputsReaching(llvm::Value *k, int64_t stride, int64_t pad, int64_t extent, int64_t outs) {
    llvm::Value *first = smax(c(0), ceilDiv(b_.CreateSub(c(pad), k), stride));
    llvm::Value *end = smin(c(outs), ceilDiv(b_.CreateSub(c(extent + pad), k), stride));
    return {first, smax(c(0), b_.CreateSub(end, first))};
  }

  // ---- max pooling with windows that tile the image ------------------------
  //
  // Stride = kernel, no padding (max_pool2d(2)): every image element is in
  // at most one window, so each window is straight-line code over its
  // elements, and the gradient writes all of them (the adjoint at the
  // window's first maximum, 0 elsewhere) instead of adding into a zeroed
  // image. The rule is the general path's (PyTorch's): a larger value or a
  // NaN takes over, ties keep the first. The same code finds the windows'
  // offsets (max_pool2d_index), and scatters dy to given offsets
  // (window_take_grad) without reading the image.

  bool tiles() const { return tilingMaxPool(n_); }

  /// A pooling gradient (it writes the image), not a pooling.
  bool gradient() const { return n_.op == Op::WindowTakeGrad; }

  void tiledMaxPool(llvm::Value *lo, llvm::Value *hi) {
    llvm::Type *fp = ctx_.fp();
    ValueId x = n_.inputs[0];
    llvm::Value *planes = b_.CreateMul(b_.CreateSub(hi, lo), c(d_.c));
    llvm::Value *first = b_.CreateMul(lo, c(d_.c));
    bool computed = n_.op == Op::MaxPool2d && fusedLoop(ctx_.graph, kernel());
    llvm::Value *planeWorkspace = // the input plane: only there
        computed && pooledInWorkspace(ctx_.graph, kernel()) ? columnsWorkspace() : nullptr;
    ctx_.loop(
        planes,
        [&](llvm::Value *i) {
          llvm::Value *plane = add(first, i); // n · C + c
          if (planeWorkspace)
            source_ = redirected_ = {x, planeWorkspace, mul(plane, d_.h * d_.w)};
          if (computed)
            inputPlane(plane);
          ctx_.loop(
              c(d_.oh),
              [&](llvm::Value *oh) {
                if (vectorPairs()) {
                  vectorRow(plane, oh);
                  return;
                }
                ctx_.loop(
                    c(d_.ow),
                    [&](llvm::Value *ow) {
                      llvm::Value *y = add(mul(add(mul(plane, d_.oh), oh), d_.ow), ow);
                      std::vector<llvm::Value *> at;
                      for (int64_t kh = 0; kh < geo_.kh; ++kh)
                        for (int64_t kw = 0; kw < geo_.kw; ++kw)
                          at.push_back(
                              add(mul(add(mul(plane, d_.h), add(mul(oh, geo_.kh), c(kh))), d_.w),
                                  add(mul(ow, geo_.kw), c(kw))));
                      llvm::Value *best = llvm::ConstantFP::getInfinity(fp, /*Negative=*/true);
                      llvm::Value *bestAt = c(0);
                      if (n_.op == Op::WindowTakeGrad) // given: offsets, dy
                        bestAt = b_.CreateFPToSI(ctx_.load(x, y), ctx_.i64());
                      else
                        for (size_t e = 0; e < at.size(); ++e) {
                          llvm::Value *v = source_.base ? b_.CreateLoad(fp, inputAt(at[e]))
                                                        : ctx_.load(x, at[e]);
                          llvm::Value *take =
                              b_.CreateOr(b_.CreateFCmpOGT(v, best), b_.CreateFCmpUNO(v, v));
                          best = b_.CreateSelect(take, v, best);
                          bestAt = b_.CreateSelect(take, c(static_cast<int64_t>(e)), bestAt);
                        }
                      if (ValueId index = offsetsStored(); index != kNoValue)
                        ctx_.store(index, y, b_.CreateSIToFP(bestAt, fp));
                      if (n_.op == Op::MaxPool2d)
                        ctx_.store(self_, y, best);
                      if (!gradient())
                        return;
                      llvm::Value *dy = windowsGradient(y, channelOf(plane), fp, nullptr);
                      llvm::Value *zero = llvm::ConstantFP::get(fp, 0.0);
                      for (size_t e = 0; e < at.size(); ++e) {
                        llvm::Value *mine = b_.CreateICmpEQ(bestAt, c(static_cast<int64_t>(e)));
                        epilogue(at[e], nullptr, b_.CreateSelect(mine, dy, zero), nullptr);
                      }
                    },
                    "ow");
              },
              "oh");
          if (gradient())
            zeroUncovered(plane);
        },
        "plane");
  }

  /// Element `at` of the pooling's input where the convolution before it
  /// left image n in the workspace (source_: Fuse.h, pooledInWorkspace).
  llvm::Value *inputAt(llvm::Value *at) {
    return b_.CreateGEP(ctx_.fp(), source_.base, b_.CreateSub(at, source_.first));
  }

  /// The windows' offsets this emitter stores: its own (max_pool2d_index),
  /// or a max pooling's that its kernel computes with it (Fuse.h:
  /// fusedPoolIndex); kNoValue for none.
  ValueId offsetsStored() {
    if (n_.op == Op::MaxPool2dIndex)
      return self_;
    size_t at = n_.op == Op::MaxPool2d ? fusedPoolIndex(ctx_.graph, kernel()) : 0;
    return at ? kernel().nodes[at] : kNoValue;
  }

  /// This node's place in its kernel's nodes.
  size_t place() {
    const std::vector<ValueId> &nodes = kernel().nodes;
    return static_cast<size_t>(std::find(nodes.begin(), nodes.end(), self_) - nodes.begin());
  }

  /// The channel of plane n · C + c.
  llvm::Value *channelOf(llvm::Value *plane) { return b_.CreateURem(plane, c(d_.c)); }

  /// The gradient's dy at windows `y` (a vector of `type` with lanes
  /// `mask`, or one): from memory, or computed by its prologue
  /// (Fuse.h: takeGradientPrologue).
  llvm::Value *windowsGradient(llvm::Value *y, llvm::Value *channel, llvm::Type *type,
                               llvm::Value *mask) {
    const std::vector<ValueId> &nodes = kernel().nodes;
    size_t own = place(), end = takeGradientPrologue(ctx_.graph, kernel(), own);
    if (end == own + 1)
      return loadElements(type, elementOf(n_.inputs[1], y), mask);
    std::map<ValueId, llvm::Value *> values;
    evaluate(own + 1, end, type, y, channel, mask, values);
    return values.at(nodes[end - 1]);
  }

  /// Plane `plane` (n · C + c) of the pooling's input, computed by the loop
  /// fused after it (Fuse.cpp: absorbPoolingLoops) and stored (to memory,
  /// or only to the workspace: pooledInWorkspace), a vector at a time: the
  /// pooling then reads it from cache.
  void inputPlane(llvm::Value *plane) {
    int64_t size = d_.h * d_.w;
    llvm::Value *base = mul(plane, size), *channel = channelOf(plane);
    vectorRun(size, [&](llvm::Value *at, llvm::Value *mask) {
      fusedLoopAt(add(base, at), channel, mask); // stores the plane
    });
  }

  /// 2 x 2 windows in f32 on a SIMD target: a whole output row a vector of
  /// windows at a time (vectorRow).
  bool vectorPairs() const {
    return geo_.kh == 2 && geo_.kw == 2 && ctx_.fp()->isFloatTy() && ctx_.vectorBytes >= 32;
  }

  /// Output row oh of a plane, L = lanes windows at a time: the two input
  /// rows as 2L-element masked loads split into even and odd columns (the
  /// windows' four elements a b / c d), the first maximum found lane by
  /// lane as the scalar path does; the forward pass stores it, the gradient
  /// stores dy at the maximum and 0 at the other three, interleaved back.
  void vectorRow(llvm::Value *plane, llvm::Value *oh) {
    auto *fp = ctx_.fp();
    unsigned lanes = ctx_.vectorBytes / 4;
    auto *vec = llvm::FixedVectorType::get(fp, lanes);
    auto *wide = llvm::FixedVectorType::get(fp, 2 * lanes);
    auto *idx = llvm::FixedVectorType::get(b_.getInt32Ty(), lanes);
    std::vector<int> even, odd, lowHalf, highHalf;
    for (unsigned i = 0; i < lanes; ++i) {
      even.push_back(static_cast<int>(2 * i));
      odd.push_back(static_cast<int>(2 * i + 1));
    }
    for (unsigned i = 0; i < lanes; ++i) { // interleave (p, q) -> p0 q0 p1 q1 ...
      lowHalf.push_back(static_cast<int>(i / 2 + (i % 2) * lanes));
      highHalf.push_back(static_cast<int>(lanes / 2 + i / 2 + (i % 2) * lanes));
    }
    auto laneMask = [&](llvm::Value *count, unsigned width) {
      llvm::SmallVector<llvm::Constant *, 32> at;
      for (unsigned i = 0; i < width; ++i)
        at.push_back(b_.getInt64(i));
      return b_.CreateICmpSLT(llvm::ConstantVector::get(at), b_.CreateVectorSplat(width, count));
    };
    llvm::Align align(4);
    llvm::Value *rowBase = mul(add(mul(plane, d_.h), mul(oh, 2)), d_.w); // x[plane, 2 oh, 0]
    llvm::Value *yBase = mul(add(mul(plane, d_.oh), oh), d_.ow);
    llvm::Value *xp = source_.base ? nullptr : ctx_.pointer(n_.inputs[0]);
    llvm::Value *steps = c((d_.ow + lanes - 1) / lanes);
    ctx_.loop(steps, [&](llvm::Value *step) {
      llvm::Value *ow0 = mul(step, lanes);
      llvm::Value *left = b_.CreateSub(c(d_.ow), ow0); // windows left in the row
      llvm::Value *m = laneMask(left, lanes);
      llvm::Value *m2 = laneMask(mul(left, 2), 2 * lanes);
      llvm::Value *zeroWide = llvm::Constant::getNullValue(wide);
      llvm::Value *y = add(yBase, ow0);
      llvm::Value *best = b_.CreateVectorSplat(lanes, llvm::ConstantFP::getInfinity(fp, true));
      llvm::Value *bestAt = llvm::Constant::getNullValue(idx);
      if (n_.op == Op::WindowTakeGrad) { // given: offsets, dy
        llvm::Value *offsets =
            b_.CreateMaskedLoad(vec, elementAt(xp, y), align, m, llvm::Constant::getNullValue(vec));
        bestAt = b_.CreateFPToSI(offsets, idx);
      } else {
        std::vector<llvm::Value *> values; // a, b, c, d
        for (int r = 0; r < 2; ++r) {
          llvm::Value *at = add(add(rowBase, c(r * d_.w)), mul(ow0, 2));
          llvm::Value *from = source_.base ? inputAt(at) : elementAt(xp, at);
          llvm::Value *row = b_.CreateMaskedLoad(wide, from, align, m2, zeroWide);
          values.push_back(b_.CreateShuffleVector(row, even));
          values.push_back(b_.CreateShuffleVector(row, odd));
        }
        for (size_t e = 0; e < values.size(); ++e) {
          llvm::Value *v = values[e];
          llvm::Value *take = b_.CreateOr(b_.CreateFCmpOGT(v, best), b_.CreateFCmpUNO(v, v));
          best = b_.CreateSelect(take, v, best);
          bestAt = b_.CreateSelect(take, b_.CreateVectorSplat(lanes, b_.getInt32(e)), bestAt);
        }
      }
      if (ValueId index = offsetsStored(); index != kNoValue)
        b_.CreateMaskedStore(b_.CreateSIToFP(bestAt, vec), elementAt(ctx_.pointer(index), y), align,
                             m);
      if (n_.op == Op::MaxPool2d)
        b_.CreateMaskedStore(best, elementAt(ctx_.pointer(self_), y), align, m);
      if (!gradient())
        return;
      llvm::Value *dy = windowsGradient(y, channelOf(plane), vec, m);
      llvm::Value *zero = llvm::Constant::getNullValue(vec);
      std::vector<llvm::Value *> grads;
      for (int e = 0; e < 4; ++e)
        grads.push_back(b_.CreateSelect(
            b_.CreateICmpEQ(bestAt, b_.CreateVectorSplat(lanes, b_.getInt32(e))), dy, zero));
      for (int r = 0; r < 2; ++r) {
        llvm::Value *low = b_.CreateShuffleVector(grads[2 * r], grads[2 * r + 1], lowHalf);
        llvm::Value *high = b_.CreateShuffleVector(grads[2 * r], grads[2 * r + 1], highHalf);
        llvm::Value *row = b_.CreateShuffleVector(low, high, [&] {
          std::vector<int> cat;
          for (unsigned i = 0; i < 2 * lanes; ++i)
            cat.push_back(static_cast<int>(i));
          return cat;
        }());
        epilogue(add(add(rowBase, c(r * d_.w)), mul(ow0, 2)), nullptr, row, m2);
      }
    });
  }

  /// The gradient's elements no window covers (the last rows and columns
  /// when the windows do not divide the image) are 0 (then the epilogue).
  void zeroUncovered(llvm::Value *plane) {
    int64_t rows = d_.oh * geo_.kh, cols = d_.ow * geo_.kw;
    llvm::Value *zero = llvm::ConstantFP::get(ctx_.fp(), 0.0);
    llvm::Value *base = mul(plane, d_.h * d_.w);
    auto fill = [&](int64_t fromRow, int64_t toRow, int64_t fromCol) {
      if (fromRow >= toRow || fromCol >= d_.w)
        return;
      ctx_.loop(c(toRow - fromRow), [&](llvm::Value *r) {
        llvm::Value *row = add(base, mul(add(r, c(fromRow)), d_.w));
        ctx_.loop(c(d_.w - fromCol), [&](llvm::Value *q) {
          epilogue(add(row, add(q, c(fromCol))), nullptr, zero, nullptr);
        });
      });
    };
    fill(0, rows, cols); // right of the windows
    fill(rows, d_.h, 0); // below them
  }

  // ---- convolutions through the GEMM kernels ------------------------------
  //
  // Strided ones, and input gradients padded by their kernel size or more.
  // Per image n, with K = C·KH·KW and P = OH·OW, and the image unrolled into
  // columns (im2col: row (c, kh, kw) of `col` holds x[n, c, oh·sh - pt + kh,
  // ow·sw - pl + kw] at oh·OW + ow, zero in the padding):
  //   forward:         y[n] (O x P)   = W (O x K) · col (K x P)
  //   input gradient:  dcol (K x P)   = Wᵀ · dy[n] (O x P), then added back
  //                    into dx[n] (col2im, in (c, kh, kw, oh, ow) order)
  //   weight gradient: dW (O x K)    += dy[n] · colᵀ (the dot GEMM), or with
  //                    many output channels dWᵀ (K x O) += col · dy[n]ᵀ
  //                    (dy[n] transposed into the workspace: the broadcast
  //                    GEMM), into this chunk's partial sum;
  //                    emitWindowFinish adds the chunks' sums in chunk
  //                    order (transposing back).
  // The chunks split the images; their count depends on the shapes only, so
  // every result is the same for any number of threads.

  llvm::Value *elementAt(llvm::Value *base, llvm::Value *index) {
    return b_.CreateInBoundsGEP(ctx_.fp(), base, index);
  }

  /// The running thread's columns (image, transposed dy, dy) in the
  /// kernel's workspace (MemoryPlanner.h): the chunks it runs reuse them
  /// one after another, so they stay in its cache (netc_rt_chunk_slot).
  llvm::Value *columnsWorkspace() {
    llvm::Value *base = workspaceBase();
    return elementAt(base, b_.CreateMul(ctx_.chunkSlot(), c(layout().bySlot())));
  }
  /// Chunk `chunk`'s partial sums in the kernel's workspace, added up in
  /// chunk order after all have run.
  llvm::Value *partialWorkspace(llvm::Value *chunk) {
    Workspace w = layout();
    llvm::Value *base = workspaceBase();
    return elementAt(base, add(c(w.chunks * w.bySlot()), b_.CreateMul(chunk, c(w.partial))));
  }
  llvm::Value *workspaceBase() {
    llvm::Value *base = ctx_.workspace(ctx_.schedule.kernelOf[static_cast<size_t>(self_)]);
    return elementAt(base, c(layout().shared));
  }

  const Kernel &kernel() const {
    int k = ctx_.schedule.kernelOf[static_cast<size_t>(self_)];
    return ctx_.schedule.kernels[static_cast<size_t>(k)];
  }

  /// The kernel's epilogue (Fuse.cpp: a convolution's bias and activation,
  /// an activation's gradient after a tiling max pooling's) on a finished value of the
  /// result at element `at`: a vector of elements [at, at + lanes) (lanes
  /// on in `mask`, all without one) or one element; `channel` indexes
  /// per-channel operands (convolutions). Stores what is materialized,
  /// the result itself included. The epilogue is the nodes after this
  /// one in its kernel, past a pooling gradient's prologue (a pooling
  /// gradient fused into a weight gradient: after the weight gradient's own).
  void epilogue(llvm::Value *at, llvm::Value *channel, llvm::Value *value, llvm::Value *mask) {
    std::map<ValueId, llvm::Value *> values{{self_, value}};
    const std::vector<ValueId> &nodes = kernel().nodes;
    size_t end = nodes.size();
    if (size_t pool = fusedPooling(ctx_.graph, kernel()); pool && n_.op == Op::Conv2d)
      end = pool; // the pooling fused after the convolution's epilogue
    evaluate(takeGradientPrologue(ctx_.graph, kernel(), place()), end, value->getType(), at,
             channel, mask, values);
    storeAt(at, mask, self_, value);
  }

  /// The kernel's nodes [first, end), elementwise, at element `at` of
  /// their shape: values of `valueType`, vectors (lanes on in `mask`, all
  /// without one) or single elements. Operands not in `values` are
  /// loaded: scalars, per-channel values ([C, 1, 1], at `channel`) and
  /// values of the nodes' shape. Adds each node's value to `values` and
  /// stores what is materialized.
  void evaluate(size_t first, size_t end, llvm::Type *valueType, llvm::Value *at,
                llvm::Value *channel, llvm::Value *mask, std::map<ValueId, llvm::Value *> &values) {
    auto *type = llvm::dyn_cast<llvm::FixedVectorType>(valueType);
    auto spread = [&](llvm::Value *x) {
      return type ? b_.CreateVectorSplat(type->getNumElements(), x) : x;
    };
    const std::vector<ValueId> &nodes = kernel().nodes;
    for (size_t i = first; i < end; ++i) {
      ValueId id = nodes[i];
      const Node &n = ctx_.graph.node(id);
      std::vector<llvm::Value *> in;
      for (ValueId v : n.inputs) {
        if (auto it = values.find(v); it != values.end()) {
          in.push_back(it->second);
          continue;
        }
        const Shape &s = ctx_.graph.shape(v);
        if (s.rank() == 0) // a scalar
          in.push_back(spread(ctx_.isInline(v) ? ctx_.inlineScalar(v) : ctx_.load(v, c(0))));
        else if (s.rank() == 3) // per channel: [O, 1, 1]
          in.push_back(spread(ctx_.load(v, channel)));
        else // the result's shape
          in.push_back(loadElements(valueType, elementOf(v, at), mask));
      }
      values[id] = emitElementwise(ctx_, n, in[0], in.size() > 1 ? in[1] : nullptr);
      storeAt(at, mask, id, values[id]);
    }
  }

  /// Element `at` of value v in memory. Not inbounds: on an implicit
  /// convolution's grid, lane 0 may lie before the tensor (only lanes
  /// inside it are on).
  llvm::Value *elementOf(ValueId v, llvm::Value *at) {
    return b_.CreateGEP(ctx_.fp(), ctx_.pointer(v), at);
  }

  /// x (a vector with `mask`, or an element), value v's at `at`: to
  /// memory if materialized, and where it is redirected.
  void storeAt(llvm::Value *at, llvm::Value *mask, ValueId v, llvm::Value *x) {
    if (v == redirected_.value) // and to memory too if others read it
      storeElements(
          x, b_.CreateGEP(ctx_.fp(), redirected_.base, b_.CreateSub(at, redirected_.first)), mask);
    if (ctx_.schedule.materialized[static_cast<size_t>(v)])
      storeElements(x, elementOf(v, at), mask);
  }

  /// A vector of `type` at `from` (lanes off in `mask` read as zero; no
  /// mask: all lanes), or the element there when `type` is a scalar.
  llvm::Value *loadElements(llvm::Type *type, llvm::Value *from, llvm::Value *mask) {
    llvm::Align align(ctx_.fp()->getPrimitiveSizeInBits() / 8);
    if (!type->isVectorTy())
      return b_.CreateLoad(type, from);
    if (mask)
      return b_.CreateMaskedLoad(type, from, align, mask, llvm::Constant::getNullValue(type));
    return b_.CreateAlignedLoad(type, from, align);
  }

  /// x (a vector, only the lanes on in `mask`, or an element) at `to`.
  void storeElements(llvm::Value *x, llvm::Value *to, llvm::Value *mask) {
    llvm::Align align(ctx_.fp()->getPrimitiveSizeInBits() / 8);
    if (!x->getType()->isVectorTy())
      b_.CreateStore(x, to);
    else if (mask)
      b_.CreateMaskedStore(x, to, align, mask);
    else
      b_.CreateAlignedStore(x, to, align);
  }

  /// The workspace's shared part: the flipped weights.
  llvm::Value *sharedWorkspace() {
    return ctx_.workspace(ctx_.schedule.kernelOf[static_cast<size_t>(self_)]);
  }

  bool flipped() const { return layout().shared != 0; }

  Workspace layout() const {
    int kernel = ctx_.schedule.kernelOf[static_cast<size_t>(self_)];
    return kernelWorkspace(ctx_.graph, ctx_.schedule.kernels[static_cast<size_t>(kernel)]);
  }
  const Shape &weightShape() const {
    return n_.op == Op::Conv2dGradWeight ? n_.shape : ctx_.graph.shape(n_.inputs[1]);
  }
  bool implicit() const { return implicitConvolution(ctx_.graph, n_, weightShape()); }

  int64_t k() const { return d_.c * geo_.kh * geo_.kw; }
  int64_t p() const { return d_.oh * d_.ow; }

  /// An image unrolled into columns: `channels` planes of h x w of `src`
  /// (image n), windows of `geo`, oh x ow window positions.
  struct Unroll {
    ValueId src;
    int64_t channels, h, w;
    WindowGeometry geo;
    int64_t oh, ow;
  };
  /// The convolution's input x.
  Unroll forwardUnroll() const { return {n_.inputs[0], d_.c, d_.h, d_.w, geo_, d_.oh, d_.ow}; }

  /// Every row (c, kh, kw) of the columns, and for each the output rows oh
  /// (and columns ow) whose window element lies inside the image:
  /// `inside(row, oh, owFirst, owCount, xBase)` with the source's index
  /// xBase + ow·sw; `outside(row, oh, from, count)` for runs in the padding.
  template <typename Inside, typename Outside>
  void columnRows(const Unroll &u, llvm::Value *n, Inside inside, Outside outside) {
    const WindowGeometry &g = u.geo;
    ctx_.loop(
        c(u.channels),
        [&](llvm::Value *ch) {
          ctx_.loop(
              c(g.kh),
              [&](llvm::Value *kh) {
                ctx_.loop(
                    c(g.kw),
                    [&](llvm::Value *kw) {
                      llvm::Value *row = add(mul(add(mul(ch, g.kh), kh), g.kw), kw);
                      auto [ohFirst, ohCount] = outputsReaching(kh, g.sh, g.pt, u.h, u.oh);
                      auto [owFirst, owCount] = outputsReaching(kw, g.sw, g.pl, u.w, u.ow);
                      llvm::Value *ohEnd = add(ohFirst, ohCount);
                      ctx_.loop(
                          c(u.oh),
                          [&](llvm::Value *oh) {
                            llvm::Value *in = b_.CreateAnd(b_.CreateICmpSGE(oh, ohFirst),
                                                           b_.CreateICmpSLT(oh, ohEnd));
                            emitIfElse(
                                b_, ctx_.fn, in,
                                [&] {
                                  llvm::Value *ih = add(b_.CreateSub(mul(oh, g.sh), c(g.pt)), kh);
                                  llvm::Value *plane = add(mul(n, u.channels), ch);
                                  llvm::Value *xBase = add(mul(add(mul(plane, u.h), ih), u.w),
                                                           b_.CreateSub(kw, c(g.pl)));
                                  outside(row, oh, c(0), owFirst);
                                  inside(row, oh, owFirst, owCount, xBase);
                                  llvm::Value *owEnd = add(owFirst, owCount);
                                  outside(row, oh, owEnd, b_.CreateSub(c(u.ow), owEnd));
                                },
                                [&] { outside(row, oh, c(0), c(u.ow)); });
                          },
                          "oh");
                    },
                    "kw");
              },
              "kh");
        },
        "c");
  }

  /// col = im2col(src[n]).
  void im2col(const Unroll &u, llvm::Value *n, llvm::Value *col) {
    llvm::Value *zero = llvm::ConstantFP::get(ctx_.fp(), 0.0);
    auto at = [&](llvm::Value *row, llvm::Value *oh, llvm::Value *ow) {
      return elementAt(col, add(add(mul(row, u.oh * u.ow), mul(oh, u.ow)), ow));
    };
    columnRows(
        u, n,
        [&](llvm::Value *row, llvm::Value *oh, llvm::Value *first, llvm::Value *count,
            llvm::Value *xBase) {
          ctx_.loop(
              count,
              [&](llvm::Value *q) {
                llvm::Value *ow = add(first, q);
                b_.CreateStore(ctx_.load(u.src, add(xBase, mul(ow, u.geo.sw))), at(row, oh, ow));
              },
              "ow");
        },
        [&](llvm::Value *row, llvm::Value *oh, llvm::Value *first, llvm::Value *count) {
          ctx_.loop(
              count, [&](llvm::Value *q) { b_.CreateStore(zero, at(row, oh, add(first, q))); },
              "ow");
        });
  }

  /// dx[n] += col2im(dcol), dx[n] zeroed beforehand.
  void col2im(llvm::Value *n, llvm::Value *dcol) {
    columnRows(
        forwardUnroll(), n,
        [&](llvm::Value *row, llvm::Value *oh, llvm::Value *first, llvm::Value *count,
            llvm::Value *xBase) {
          llvm::Value *from = add(mul(row, p()), mul(oh, d_.ow));
          ctx_.loop(
              count,
              [&](llvm::Value *q) {
                llvm::Value *ow = add(first, q);
                llvm::Value *xi = add(xBase, mul(ow, geo_.sw));
                llvm::Value *v = b_.CreateLoad(ctx_.fp(), elementAt(dcol, add(from, ow)));
                ctx_.store(self_, xi, b_.CreateFAdd(ctx_.load(self_, xi), v));
              },
              "ow");
        },
        [](llvm::Value *, llvm::Value *, llvm::Value *, llvm::Value *) {});
  }

  /// The forward product into the output plane at `plane`: the shared
  /// GEMM function, or its tiles inline with the kernel's epilogue.
  void forwardProduct(const GemmCall &call, llvm::Value *plane) {
    if (kernel().nodes.size() == 1) {
      emitGemmCall(ctx_, call);
      return;
    }
    emitGemmInline(ctx_, call, [&](llvm::Value *v, llvm::Value *o, llvm::Value *q, llvm::Value *m) {
      epilogue(add(add(plane, mul(o, p())), q), o, v, m);
    });
  }

  void convGemm(llvm::Value *lo, llvm::Value *hi, llvm::Value *chunk) {
    if (auto t = winograd()) {
      if (t->weightGradient)
        convWinogradWeights(*t, lo, hi, chunk);
      else
        convWinograd(*t, lo, hi);
      return;
    }
    if (implicit()) {
      convImplicit(lo, hi, chunk);
      return;
    }
    llvm::Value *col = columnsWorkspace();
    llvm::Value *partial = nullptr;
    if (n_.op == Op::Conv2dGradWeight) {
      partial = partialWorkspace(chunk);
      zeroFill(partial, d_.o * k());
    }
    ctx_.loop(
        b_.CreateSub(hi, lo),
        [&](llvm::Value *i) {
          llvm::Value *n = add(lo, i);
          llvm::Value *plane = mul(n, d_.o * p()); // y[n] or dy[n]: O x P
          switch (n_.op) {
          case Op::Conv2d: {
            im2col(forwardUnroll(), n, col);
            GemmCall call{
                false,   false,
                false,   ctx_.pointer(n_.inputs[1]),
                col,     ctx_.pointer(self_) ? elementAt(ctx_.pointer(self_), plane) : nullptr,
                c(d_.o), c(p()),
                c(k()),  c(k()),
                c(p())};
            forwardProduct(call, plane);
            break;
          }
          case Op::Conv2dGradInput:
            emitGemmCall(ctx_, {true, false, false, ctx_.pointer(n_.inputs[1]),
                                elementAt(ctx_.pointer(n_.inputs[0]), plane), col, c(k()), c(p()),
                                c(d_.o), c(k()), c(p())});
            col2im(n, col);
            break;
          default: { // Conv2dGradWeight
            im2col(forwardUnroll(), n, col);
            llvm::Value *dy = elementAt(ctx_.pointer(n_.inputs[1]), plane);
            if (!transposedWeightGradient(n_.shape, false)) {
              emitGemmCall(ctx_, {false, true, true, dy, col, partial, c(d_.o), c(k()), c(p()),
                                  c(p()), c(p())});
              break;
            }
            llvm::Value *dyT = elementAt(col, c(k() * p()));
            ctx_.loop(c(d_.o), [&](llvm::Value *o) {
              ctx_.loop(c(p()), [&](llvm::Value *q) {
                llvm::Value *v = b_.CreateLoad(ctx_.fp(), elementAt(dy, add(mul(o, p()), q)));
                b_.CreateStore(v, elementAt(dyT, add(mul(q, d_.o), o)));
              });
            });
            emitGemmCall(ctx_, {false, false, true, col, dyT, partial, c(k()), c(d_.o), c(p()),
                                c(p()), c(d_.o)});
            break;
          }
          }
        },
        "n");
  }

  // ---- Winograd F(2x2, 3x3) (MemoryPlanner.h: winogradConvolution) ------
  //
  // Per image: the padded image into its four parity planes; V = Bᵀ d B for
  // every channel and tile, a vector of tiles at a time; the 16 products
  // M[xi] = U[xi] · V[xi] through the GEMM kernels; then per output channel
  // and vector of tiles Y = Aᵀ M A (the 2 x 2 outputs of each tile: one
  // pooling window), the epilogue on each of the four, and the window's
  // first maximum and its offset, stored pooled. U = G g Gᵀ is computed
  // once per step (prepare). With
  //   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
  //   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], Aᵀ = [1 1 1 0; 0 1 -1 -1].

  std::optional<WinogradTiles> winograd() const {
    if (!conv_)
      return std::nullopt;
    return winogradConvolution(ctx_.graph, kernel());
  }

  /// Sum of coefficient · value over the terms whose coefficient is not 0,
  /// in their order (coefficients 1 and -1 as additions and subtractions).
  llvm::Value *combine(const std::vector<std::pair<double, llvm::Value *>> &terms) {
    llvm::Value *sum = nullptr;
    for (auto [k, x] : terms) {
      if (k == 0)
        continue;
      llvm::Value *term = x;
      if (k != 1 && k != -1)
        term = b_.CreateFMul(x, llvm::ConstantFP::get(x->getType(), k));
      if (!sum)
        sum = k == -1 ? b_.CreateFNeg(term) : term;
      else
        sum = k == -1 ? b_.CreateFSub(sum, term) : b_.CreateFAdd(sum, term);
    }
    return sum;
  }

  /// U[xi][r][d] = (G g Gᵀ)[xi / 4][xi % 4] for product row r and depth d:
  /// g the 3 x 3 weights of (o, c) = (r, d), or for an input gradient the
  /// flipped ones of (o, c) = (d, r).
  void winogradWeights(const WinogradTiles &t) {
    llvm::Value *u = sharedWorkspace();
    ctx_.loop(c(t.outputs), [&](llvm::Value *o) {
      ctx_.loop(c(t.channels), [&](llvm::Value *ch) {
        llvm::Value *g[3][3], *gg[4][3];
        for (int64_t kh = 0; kh < 3; ++kh)
          for (int64_t kw = 0; kw < 3; ++kw)
            g[kh][kw] =
                ctx_.load(n_.inputs[1], t.gradient ? weightIndex(ch, o, c(2 - kh), c(2 - kw))
                                                   : weightIndex(o, ch, c(kh), c(kw)));
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 3; ++j)
            gg[i][j] = combine({{kG[i][0], g[0][j]}, {kG[i][1], g[1][j]}, {kG[i][2], g[2][j]}});
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) {
            llvm::Value *x =
                combine({{kG[j][0], gg[i][0]}, {kG[j][1], gg[i][1]}, {kG[j][2], gg[i][2]}});
            llvm::Value *at = add(mul(add(mul(c(4 * i + j), t.outputs), o), t.channels), ch);
            b_.CreateStore(x, elementAt(u, at));
          }
      });
    });
  }

  void convWinograd(const WinogradTiles &t, llvm::Value *lo, llvm::Value *hi) {
    int64_t lanes = std::max<int64_t>(simdLanes(), 1);
    auto *vec = llvm::FixedVectorType::get(ctx_.fp(), static_cast<unsigned>(lanes));
    Workspace w = layout();
    llvm::Value *slot = columnsWorkspace(), *u = sharedWorkspace();
    llvm::Value *planes = slot, *v = elementAt(slot, c(t.planes()));
    llvm::Value *dyImage = elementAt(slot, c(w.columns + w.transposed)); // computed dy
    llvm::Value *m = elementAt(slot, c(w.columns + w.transposed + w.dy));
    int64_t vectors = t.cells / lanes;
    size_t poolGradient = t.gradient ? fusedPoolGradient(ctx_.graph, kernel()) : 0;
    zeroFill(planes, t.planes()); // (winogradInput)
    ctx_.loop(
        b_.CreateSub(hi, lo),
        [&](llvm::Value *i) {
          llvm::Value *n = add(lo, i);
          // The input's element (ch, y, x): x, dy, or dy as this kernel
          // computes it (into the workspace, and to memory for others).
          llvm::Value *first = mul(n, t.input());
          if (poolGradient)
            poolImage(poolGradient, n, {n_.inputs[0], dyImage, first}, {});
          auto input = [&](llvm::Value *ch, llvm::Value *y, llvm::Value *x) -> llvm::Value * {
            llvm::Value *at = add(mul(add(mul(ch, t.h), y), t.w), x);
            if (poolGradient)
              return b_.CreateLoad(ctx_.fp(), elementAt(dyImage, at));
            return ctx_.load(n_.inputs[0], add(first, at));
          };
          winogradInput(t, input, planes, v);
          // 3. M[xi] (O x cells) = U[xi] (O x C) · V[xi] (C x cells).
          for (int64_t xi = 0; xi < 16; ++xi)
            emitGemmCall(ctx_,
                         {false, false, false, elementAt(u, c(xi * t.outputs * t.channels)),
                          elementAt(v, c(xi * t.vStride())), elementAt(m, c(xi * t.mStride())),
                          c(t.outputs), c(t.cells), c(t.channels), c(t.channels), c(t.cells)});
          // 4. Y = Aᵀ M A for each row and vector of cells, then stored.
          ctx_.loop(c(t.outputs), [&](llvm::Value *o) {
            ctx_.loop(c(vectors), [&](llvm::Value *k) {
              llvm::Value *x[16], *row[2][4], *y[4];
              llvm::Value *cell = mul(k, lanes);
              for (int64_t xi = 0; xi < 16; ++xi)
                x[xi] = loadElements(
                    vec, elementAt(m, add(c(xi * t.mStride()), add(mul(o, t.cells), cell))),
                    nullptr);
              for (int e = 0; e < 4; ++e) {
                row[0][e] = b_.CreateFAdd(b_.CreateFAdd(x[e], x[4 + e]), x[8 + e]);
                row[1][e] = b_.CreateFSub(b_.CreateFSub(x[4 + e], x[8 + e]), x[12 + e]);
              }
              for (int a = 0; a < 2; ++a) {
                y[2 * a] = b_.CreateFAdd(b_.CreateFAdd(row[a][0], row[a][1]), row[a][2]);
                y[2 * a + 1] = b_.CreateFSub(b_.CreateFSub(row[a][1], row[a][2]), row[a][3]);
              }
              // Cells on grid lines: cell ty · grid + tx is tile (ty, tx)
              // for tx < pw; a vector reaches one or more lines.
              llvm::Value *first = b_.CreateUDiv(cell, c(t.grid));
              llvm::Value *last = b_.CreateUDiv(add(cell, c(lanes - 1)), c(t.grid));
              llvm::Value *count =
                  smax(b_.CreateSub(add(smin(last, c(t.ph - 1)), c(1)), first), c(0)); // below ph
              if (t.gradient)
                storeGradientTiles(t, y, n, o, cell, first, count);
              else
                storePooledTiles(t, y, n, o, cell, first, count);
            });
          });
        },
        "n");
  }

  /// A weight gradient by Winograd, images [lo, hi) into chunk `chunk`'s
  /// partial sums S[xi] (C x O) and db's (O): per image V from x (steps 1
  /// and 2), dy transposed (a position's O channels a run) and from it
  /// DY[xi][cell] = (A g Aᵀ)[xi / 4][xi % 4] for each tile g of 2 x 2 of dy
  /// (A = [1 0; 1 1; 1 -1; 0 -1]; (1, 1) is the tile's sum: db), then
  /// S[xi] += V[xi] (C x cells) · DY[xi] (cells x O). The cells of the
  /// grid's dropped column keep DY = 0 (their V is not). dW = Gᵀ S G is
  /// computed from the chunks' sums (finish).
  void convWinogradWeights(const WinogradTiles &t, llvm::Value *lo, llvm::Value *hi,
                           llvm::Value *chunk) {
    Workspace w = layout();
    llvm::Value *slot = columnsWorkspace();
    llvm::Value *planes = slot, *v = elementAt(slot, c(t.planes()));
    llvm::Value *dyT = elementAt(slot, c(w.columns));
    llvm::Value *dys = elementAt(dyT, c(t.dyTransposed()));
    llvm::Value *partial = partialWorkspace(chunk);
    llvm::Value *dbPartial = elementAt(partial, c(16 * t.sum()));
    zeroFill(partial, w.partial);
    llvm::Value *zero = llvm::Constant::getNullValue(runType());
    for (int64_t xi = 0; xi < 16; ++xi)
      ctx_.loop(c(t.ph - 1), [&](llvm::Value *ty) {
        llvm::Value *cell = add(mul(ty, t.grid), c(t.pw));
        vectorRun(t.outputs, [&](llvm::Value *o, llvm::Value *mask) {
          llvm::Value *at = add(c(xi * t.dyStride()), add(mul(cell, t.stride), o));
          storeElements(zero, elementAt(dys, at), mask);
        });
      });
    // Rows and columns of the tiles past dy's (odd sizes): zeros.
    bool rowsPast = 2 * t.ph > t.oh, columnsPast = 2 * t.pw > t.ow;
    zeroFill(planes, t.planes()); // (winogradInput)
    ctx_.loop(
        b_.CreateSub(hi, lo),
        [&](llvm::Value *i) {
          llvm::Value *n = add(lo, i);
          llvm::Value *first = mul(n, t.input());
          winogradInput(
              t,
              [&](llvm::Value *ch, llvm::Value *y, llvm::Value *x) {
                return ctx_.load(n_.inputs[0], add(first, add(mul(add(mul(ch, t.h), y), t.w), x)));
              },
              planes, v);
          llvm::Value *dy = elementAt(ctx_.pointer(n_.inputs[1]), mul(n, t.outputs * p()));
          transposeImage(dy, dyT, t.ow, t.stride);
          ctx_.loop(c(t.ph), [&](llvm::Value *ty) {
            ctx_.loop(c(t.pw), [&](llvm::Value *tx) {
              llvm::Value *cell = add(mul(ty, t.grid), tx);
              vectorRun(t.outputs, [&](llvm::Value *o, llvm::Value *mask) {
                llvm::Value *g[2][2], *h[2][4], *d[4][4];
                for (int64_t a = 0; a < 2; ++a)
                  for (int64_t e = 0; e < 2; ++e) {
                    llvm::Value *y = add(mul(ty, 2), c(a)), *x = add(mul(tx, 2), c(e));
                    llvm::Value *at = add(mul(add(mul(y, t.ow), x), t.stride), o);
                    if ((a == 1 && rowsPast) || (e == 1 && columnsPast))
                      g[a][e] = loadInside(
                          dyT, at,
                          b_.CreateAnd(b_.CreateICmpSLT(y, c(t.oh)), b_.CreateICmpSLT(x, c(t.ow))),
                          mask);
                    else
                      g[a][e] = loadElements(runType(), elementAt(dyT, at), mask);
                  }
                for (int a = 0; a < 2; ++a) {
                  h[a][0] = g[a][0];
                  h[a][1] = b_.CreateFAdd(g[a][0], g[a][1]);
                  h[a][2] = b_.CreateFSub(g[a][0], g[a][1]);
                  h[a][3] = b_.CreateFNeg(g[a][1]);
                }
                for (int e = 0; e < 4; ++e) {
                  d[0][e] = h[0][e];
                  d[1][e] = b_.CreateFAdd(h[0][e], h[1][e]);
                  d[2][e] = b_.CreateFSub(h[0][e], h[1][e]);
                  d[3][e] = b_.CreateFNeg(h[1][e]);
                }
                for (int64_t xi = 0; xi < 16; ++xi) {
                  llvm::Value *at = add(c(xi * t.dyStride()), add(mul(cell, t.stride), o));
                  storeElements(d[xi / 4][xi % 4], elementAt(dys, at), mask);
                }
                if (bias()) {
                  llvm::Value *sum = elementAt(dbPartial, o);
                  storeElements(b_.CreateFAdd(loadElements(runType(), sum, mask), d[1][1]), sum,
                                mask);
                }
              });
            });
          });
          // S[xi] (C x O) += V[xi] (C x cells) · DY[xi] (cells x O).
          for (int64_t xi = 0; xi < 16; ++xi)
            emitGemmCall(ctx_,
                         {false, false, true, elementAt(v, c(xi * t.vStride())),
                          elementAt(dys, c(xi * t.dyStride())), elementAt(partial, c(xi * t.sum())),
                          c(t.channels), c(t.outputs), c(t.depth()), c(t.cells), c(t.stride)});
        },
        "n");
  }

  /// vectorRun's elements at base[at] (lanes on in `mask`) if `inside`,
  /// else zeros (nothing read).
  llvm::Value *loadInside(llvm::Value *base, llvm::Value *at, llvm::Value *inside,
                          llvm::Value *mask) {
    llvm::Type *type = runType();
    if (!type->isVectorTy()) {
      llvm::Value *x = b_.CreateLoad(type, elementAt(base, b_.CreateSelect(inside, at, c(0))));
      return b_.CreateSelect(inside, x, llvm::Constant::getNullValue(type));
    }
    llvm::Value *on = b_.CreateVectorSplat(static_cast<unsigned>(runLanes()), inside);
    return loadElements(type, elementAt(base, at), mask ? b_.CreateAnd(on, mask) : on);
  }

  /// dW = Gᵀ S G from the chunks' partial sums S[xi] (in chunk order), for
  /// each input channel and vector of output channels; db likewise.
  void winogradWeightsFinish(const WinogradTiles &t, llvm::Value *chunks) {
    llvm::Value *first = partialWorkspace(c(0));
    int64_t size = layout().partial;
    auto total = [&](int64_t at, llvm::Value *offset, llvm::Value *mask) {
      return ctx_.sumOverChunks(chunks, [&](llvm::Value *chunk) {
        return loadElements(runType(), elementAt(first, add(mul(chunk, size), add(c(at), offset))),
                            mask);
      });
    };
    llvm::Value *dW = ctx_.pointer(self_);
    ctx_.loop(c(t.channels), [&](llvm::Value *ch) {
      vectorRun(t.outputs, [&](llvm::Value *o, llvm::Value *mask) {
        llvm::Value *s[16], *gs[3][4];
        for (int64_t xi = 0; xi < 16; ++xi)
          s[xi] = total(xi * t.sum(), add(mul(ch, t.outputs), o), mask);
        for (int r = 0; r < 3; ++r)
          for (int j = 0; j < 4; ++j)
            gs[r][j] = combine({{kG[0][r], s[j]},
                                {kG[1][r], s[4 + j]},
                                {kG[2][r], s[8 + j]},
                                {kG[3][r], s[12 + j]}});
        for (int r = 0; r < 3; ++r)
          for (int e = 0; e < 3; ++e) {
            llvm::Value *x = combine({{kG[0][e], gs[r][0]},
                                      {kG[1][e], gs[r][1]},
                                      {kG[2][e], gs[r][2]},
                                      {kG[3][e], gs[r][3]}});
            scatterColumn(x, dW, o, add(mul(ch, 9), c(3 * r + e)), mask);
          }
      });
    });
    if (!bias())
      return;
    llvm::Value *db = ctx_.pointer(fusedBiasSum(ctx_.graph, kernel()));
    vectorRun(t.outputs, [&](llvm::Value *o, llvm::Value *mask) {
      storeElements(total(16 * t.sum(), o, mask), elementAt(db, o), mask);
    });
  }

  /// Steps 1 and 2 of a Winograd kernel on one image, `input(ch, y, x)`
  /// its element: the parity planes, then V.
  void winogradInput(
      const WinogradTiles &t,
      const std::function<llvm::Value *(llvm::Value *, llvm::Value *, llvm::Value *)> &input,
      llvm::Value *planes, llvm::Value *v) {
    int64_t lanes = std::max<int64_t>(simdLanes(), 1);
    auto *vec = llvm::FixedVectorType::get(ctx_.fp(), static_cast<unsigned>(lanes));
    int64_t plane = t.rows * t.grid, vectors = t.cells / lanes;
    // 1. Padded element (py, px) = input (py - top, px - left) to
    // plane (py % 2, px % 2) at (py / 2, px / 2): rows and columns of
    // one parity at a time (strided runs the loop vectorizer takes). The
    // padding's elements are the zeros the caller filled the planes with
    // once (no image writes them).
    for (int64_t p = 0; p < 2; ++p)
      for (int64_t q = 0; q < 2; ++q) {
        int64_t y0 = ((p - t.top) % 2 + 2) % 2, x0 = ((q - t.left) % 2 + 2) % 2;
        int64_t yEnd = std::min(t.h, 2 * t.rows - t.top);
        int64_t xEnd = std::min(t.w, 2 * t.grid - t.left);
        int64_t ys = std::max<int64_t>(0, (yEnd - y0 + 1) / 2);
        int64_t xs = std::max<int64_t>(0, (xEnd - x0 + 1) / 2);
        ctx_.loop(c(t.channels), [&](llvm::Value *ch) {
          ctx_.loop(c(ys), [&](llvm::Value *k) {
            llvm::Value *y = add(c(y0), mul(k, 2));
            llvm::Value *yy = add(c((y0 + t.top) / 2), k);
            llvm::Value *dst =
                elementAt(planes, add(mul(add(c((2 * p + q) * t.channels), ch), plane),
                                      add(mul(yy, t.grid), c((x0 + t.left) / 2))));
            ctx_.loop(c(xs), [&](llvm::Value *j) {
              b_.CreateStore(input(ch, y, add(c(x0), mul(j, 2))), elementAt(dst, j));
            });
          });
        });
      }
    // 2. V[xi][c][cell] = (Bᵀ d B)[xi / 4][xi % 4], d the cell's tile.
    ctx_.loop(c(t.channels), [&](llvm::Value *ch) {
      ctx_.loop(c(vectors), [&](llvm::Value *k) {
        llvm::Value *d[4][4], *r[4][4];
        for (int64_t a = 0; a < 4; ++a)
          for (int64_t e = 0; e < 4; ++e) {
            llvm::Value *at = add(mul(add(c((2 * (a % 2) + e % 2) * t.channels), ch), plane),
                                  add(mul(k, lanes), c(a / 2 * t.grid + e / 2)));
            d[a][e] = loadElements(vec, elementAt(planes, at), nullptr);
          }
        for (int e = 0; e < 4; ++e) {
          r[0][e] = b_.CreateFSub(d[0][e], d[2][e]);
          r[1][e] = b_.CreateFAdd(d[1][e], d[2][e]);
          r[2][e] = b_.CreateFSub(d[2][e], d[1][e]);
          r[3][e] = b_.CreateFSub(d[1][e], d[3][e]);
        }
        for (int a = 0; a < 4; ++a) {
          llvm::Value *out[4] = {b_.CreateFSub(r[a][0], r[a][2]), b_.CreateFAdd(r[a][1], r[a][2]),
                                 b_.CreateFSub(r[a][2], r[a][1]), b_.CreateFSub(r[a][1], r[a][3])};
          for (int e = 0; e < 4; ++e) {
            llvm::Value *at =
                add(c((4 * a + e) * t.vStride()), add(mul(ch, t.cells), mul(k, lanes)));
            storeElements(out[e], elementAt(v, at), nullptr);
          }
        }
      });
    });
  }

  /// The lanes of `lanes` cells from `cell` that lie on grid line `line`
  /// (tx < pw), each lane `repeat` times in a row.
  llvm::Value *onLine(const WinogradTiles &t, llvm::Value *cell, llvm::Value *line, int64_t lanes,
                      int64_t repeat) {
    std::vector<llvm::Constant *> at;
    for (int64_t i = 0; i < lanes * repeat; ++i)
      at.push_back(b_.getInt64(static_cast<uint64_t>(i / repeat)));
    auto width = static_cast<unsigned>(lanes * repeat);
    llvm::Value *cells = add(b_.CreateVectorSplat(width, cell), llvm::ConstantVector::get(at));
    llvm::Value *start = mul(line, t.grid);
    return b_.CreateAnd(b_.CreateICmpUGE(cells, b_.CreateVectorSplat(width, start)),
                        b_.CreateICmpULT(cells, b_.CreateVectorSplat(width, add(start, c(t.pw)))));
  }

  /// A convolution's tiles: the epilogue on each of a window's four
  /// outputs, its first maximum (elements (0,0) (0,1) (1,0) (1,1) in order,
  /// the pooling's own rule: a larger value or a NaN takes over) and its
  /// offset, stored pooled.
  void storePooledTiles(const WinogradTiles &t, llvm::Value *const y[4], llvm::Value *n,
                        llvm::Value *o, llvm::Value *cell, llvm::Value *first, llvm::Value *count) {
    int64_t lanes = std::max<int64_t>(simdLanes(), 1);
    auto *vec = llvm::FixedVectorType::get(ctx_.fp(), static_cast<unsigned>(lanes));
    const std::vector<ValueId> &nodes = kernel().nodes;
    size_t pool = fusedPooling(ctx_.graph, kernel());
    ValueId pooled = nodes[pool];
    ValueId offsets = fusedPoolIndex(ctx_.graph, kernel()) ? nodes.back() : kNoValue;
    llvm::Value *best = nullptr, *bestAt = nullptr;
    for (int64_t e = 0; e < 4; ++e) {
      std::map<ValueId, llvm::Value *> values{{self_, y[e]}};
      evaluate(1, pool, vec, c(0), o, nullptr, values);
      llvm::Value *z = values.at(nodes[pool - 1]);
      llvm::Value *at = b_.CreateVectorSplat(static_cast<unsigned>(lanes), c(e));
      if (!best) {
        best = z;
        bestAt = at;
        continue;
      }
      llvm::Value *take = b_.CreateOr(b_.CreateFCmpOGT(z, best), b_.CreateFCmpUNO(z, z));
      best = b_.CreateSelect(take, z, best);
      bestAt = b_.CreateSelect(take, at, bestAt);
    }
    llvm::Value *out = add(mul(add(mul(n, t.outputs), o), t.ph * t.pw), cell);
    llvm::Value *fpAt = b_.CreateSIToFP(bestAt, vec);
    ctx_.loop(count, [&](llvm::Value *j) {
      llvm::Value *line = add(first, j);
      llvm::Value *on = onLine(t, cell, line, lanes, 1);
      // lane 0's place (cell - line · (grid - pw) past the image's first):
      // may lie before the tensor, only lanes on are stored
      llvm::Value *to = b_.CreateSub(out, mul(line, t.grid - t.pw));
      storeElements(best, b_.CreateGEP(ctx_.fp(), ctx_.pointer(pooled), to), on);
      if (offsets != kNoValue)
        storeElements(fpAt, b_.CreateGEP(ctx_.fp(), ctx_.pointer(offsets), to), on);
    });
  }

  /// An input gradient's tiles: row a of tile (ty, tx) is dx's row 2·ty + a,
  /// columns 2·tx and 2·tx + 1 (y[2a], y[2a + 1] interleaved), those inside dx.
  void storeGradientTiles(const WinogradTiles &t, llvm::Value *const y[4], llvm::Value *n,
                          llvm::Value *ch, llvm::Value *cell, llvm::Value *first,
                          llvm::Value *count) {
    int64_t lanes = std::max<int64_t>(simdLanes(), 1);
    std::vector<int> pairs;
    std::vector<llvm::Constant *> columns; // 2 · lane + b
    for (int64_t i = 0; i < lanes; ++i)
      for (int64_t b = 0; b < 2; ++b) {
        pairs.push_back(static_cast<int>(i + b * lanes));
        columns.push_back(b_.getInt64(static_cast<uint64_t>(2 * i + b)));
      }
    auto width = static_cast<unsigned>(2 * lanes);
    llvm::Value *dx = ctx_.pointer(self_);
    llvm::Value *plane = mul(add(mul(n, d_.c), ch), d_.h * d_.w);
    ctx_.loop(count, [&](llvm::Value *j) {
      llvm::Value *line = add(first, j);
      llvm::Value *on = onLine(t, cell, line, lanes, 2);
      // dx's column of each element: 2 · (cell + lane - line · grid) + b
      llvm::Value *x0 = mul(b_.CreateSub(cell, mul(line, t.grid)), 2);
      llvm::Value *x = add(b_.CreateVectorSplat(width, x0), llvm::ConstantVector::get(columns));
      on = b_.CreateAnd(on, b_.CreateICmpSLT(x, b_.CreateVectorSplat(width, c(d_.w))));
      for (int64_t a = 0; a < 2; ++a) {
        llvm::Value *row = add(mul(line, 2), c(a));
        llvm::Value *inside = b_.CreateICmpSLT(row, c(d_.h));
        llvm::Value *mask = b_.CreateAnd(on, b_.CreateVectorSplat(width, inside));
        llvm::Value *pair = b_.CreateShuffleVector(y[2 * a], y[2 * a + 1], pairs);
        // lane 0's place: may lie before the row, only lanes on are stored
        llvm::Value *to = add(plane, add(mul(row, d_.w), x0));
        storeElements(pair, b_.CreateGEP(ctx_.fp(), dx, to), mask);
      }
    });
  }

  // ---- implicit GEMM (stride 1) --------------------------------------------
  //
  // The image, zero-padded into the workspace (MemoryPlanner.cpp says why
  // also when unpadded), is `channels` planes of hp x wp: row (c, kh, kw)
  // of its im2col columns is then the run of it starting at c·hp·wp +
  // kh·wp + kw (the GEMM's row table), and output position (oh, ow) is its
  // column oh·wp + ow. The product's columns are this grid, wp to a row, of
  // which the first ow are outputs; the others (windows reaching past the
  // row's end) are computed and dropped (stored on a grid,
  // MatMulKernel.cpp). The weight gradient reads dy laid out on the same
  // grid (the transposed GEMM summing over its valid cells only, the dot
  // GEMM reading zeros in the dropped columns). The forward products are
  // the same sums in the same order as through im2col: only the copies are
  // gone.

  struct Grid {
    ValueId src;        ///< x, or dy for the input gradient
    int64_t h, w;       ///< its planes
    PaddedImage padded; ///< as copied (MemoryPlanner.h)
    int64_t oh, ow;     ///< the outputs
    int64_t hp() const { return padded.height; }
    int64_t wp() const { return padded.width; }
    int64_t columns() const { return padded.columns(oh, ow); }
  };

  Grid grid() const {
    PaddedImage padded = paddedImage(ctx_.graph, n_, weightShape());
    if (n_.op == Op::Conv2dGradInput) // dy, padded by kernel - 1 - padding
      return {n_.inputs[0], d_.oh, d_.ow, padded, d_.h, d_.w};
    return {n_.inputs[0], d_.h, d_.w, padded, d_.oh, d_.ow};
  }

  /// The row table: where row (c, kh, kw) starts in the padded image;
  /// with the bias gradient, one more row: the ones after the image. For
  /// an input gradient split by kernel rows, the rows in (kh, c, kw) order.
  llvm::Value *rowTable(const Grid &g) {
    int64_t window = geo_.kh * geo_.kw, image = g.padded.elements();
    int64_t channels = g.padded.channels, plane = g.hp() * g.wp();
    bool byKernelRow = splitByKernelRow(g);
    return constantArray(
        *ctx_.fn->getParent(),
        fmt::format("netc.conv_rows.{}x{}x{}x{}x{}+{}{}{}", channels, g.hp(), g.wp(), geo_.kh,
                    geo_.kw, g.padded.shift, bias() ? ".ones" : "", byKernelRow ? ".kh" : ""),
        b_.getInt32Ty(),
        [&](int64_t row) {
          int64_t ch = row / window, kh = row % window / geo_.kw, kw = row % geo_.kw;
          if (byKernelRow) {
            kh = row / (channels * geo_.kw);
            ch = row / geo_.kw % channels;
          }
          if (ch == channels)
            return static_cast<double>(image);
          return static_cast<double>(ch * plane + kh * g.wp() + kw + g.padded.shift);
        },
        channels * window + bias());
  }

  /// The output rows [first, end) whose row kh of the window lies in the
  /// grid's source rather than its zero padding.
  std::pair<int64_t, int64_t> rowsReached(const Grid &g, int64_t kh) const {
    return {std::max<int64_t>(0, g.padded.top - kh),
            std::min<int64_t>(g.oh, g.padded.top + g.h - kh)};
  }

  /// An input gradient whose dy is padded by rows (a 5 x 5 kernel without
  /// padding: 4 rows each side) computed as one product per kernel row
  /// over only the output rows it reaches: LeNet-5's second convolution
  /// sums 50 of its 70 (output row, kernel row) pairs.
  bool splitByKernelRow(const Grid &g) const {
    if (n_.op != Op::Conv2dGradInput)
      return false;
    int64_t reached = 0;
    for (int64_t kh = 0; kh < geo_.kh; ++kh) {
      auto [first, end] = rowsReached(g, kh);
      reached += std::max<int64_t>(0, end - first);
    }
    return reached * 10 < geo_.kh * g.oh * 9;
  }

  /// A weight gradient that also sums the bias gradient (Fuse.cpp:
  /// absorbBiasGradients): 1, else 0.
  int64_t bias() const { return fusedBiasSum(ctx_.graph, kernel()) != kNoValue; }

  void fill(llvm::Value *base, int64_t count, double value) {
    ctx_.loop(c(count), [&](llvm::Value *i) {
      b_.CreateStore(llvm::ConstantFP::get(ctx_.fp(), value), elementAt(base, i));
    });
  }
  void zeroFill(llvm::Value *base, int64_t count) { fill(base, count, 0.0); }

  /// Image n of the grid's source, copied into `padded` (whose padding the
  /// chunk zeroed).
  void copyImage(const Grid &g, llvm::Value *n, llvm::Value *padded) {
    llvm::Value *src = elementAt(ctx_.pointer(g.src), mul(n, g.padded.channels * g.h * g.w));
    ctx_.loop(c(g.padded.channels), [&](llvm::Value *ch) {
      ctx_.loop(c(g.h), [&](llvm::Value *ih) {
        llvm::Value *from = mul(add(mul(ch, g.h), ih), g.w);
        llvm::Value *to =
            add(mul(add(mul(ch, g.hp()), add(ih, c(g.padded.top))), g.wp()), c(g.padded.left));
        copyRun(elementAt(src, from), elementAt(padded, to), g.w);
      });
    });
  }

  /// dy[n] computed by the loop fused after the weight gradient (Fuse.cpp:
  /// absorbGradientLoops) a row of vectors at a time, onto the grid.
  void gradientOnGrid(llvm::Value *n, llvm::Value *dyGrid, const Grid &g) {
    ctx_.loop(c(d_.o), [&](llvm::Value *o) {
      ctx_.loop(c(d_.oh), [&](llvm::Value *oh) {
        llvm::Value *row = add(mul(add(mul(n, d_.o), o), d_.oh), oh); // of dy
        llvm::Value *to = add(mul(o, g.columns()), mul(oh, g.wp()));
        vectorRun(d_.ow, [&](llvm::Value *ow, llvm::Value *mask) {
          llvm::Value *dy = fusedLoopAt(add(mul(row, d_.ow), ow), o, mask);
          storeElements(dy, elementAt(dyGrid, add(to, ow)), mask);
        });
      });
    });
  }

  /// The loop fused after the kernel's front (Fuse.h: fusedLoop) at
  /// element `at` of its shape, a run vector (vectorRun's `mask`): its
  /// last value; what it materializes stored.
  llvm::Value *fusedLoopAt(llvm::Value *at, llvm::Value *channel, llvm::Value *mask) {
    const std::vector<ValueId> &nodes = kernel().nodes;
    std::map<ValueId, llvm::Value *> values;
    size_t end = fusedPoolIndex(ctx_.graph, kernel());
    end = end ? end : nodes.size(); // not the pooling's offsets
    evaluate(fusedLoop(ctx_.graph, kernel()), end, runType(), at, channel, mask, values);
    return values.at(nodes[end - 1]);
  }

  /// Elements of the type a SIMD register holds.
  int64_t simdLanes() const {
    return static_cast<int64_t>(ctx_.vectorBytes / (ctx_.fp()->getPrimitiveSizeInBits() / 8));
  }

  /// vectorRun's elements at a time: a SIMD register's, or 1 without SIMD.
  int64_t runLanes() const { return simdLanes() >= 4 ? simdLanes() : 1; }

  /// vectorRun's values: vectors of runLanes(), or scalars.
  llvm::Type *runType() const {
    int64_t lanes = runLanes();
    if (lanes == 1)
      return ctx_.fp();
    return llvm::FixedVectorType::get(ctx_.fp(), static_cast<unsigned>(lanes));
  }

  /// body(at, mask) for elements [0, count) runLanes() at a time: whole
  /// vectors in a loop (mask null), then the rest with its lanes on.
  void vectorRun(int64_t count, const std::function<void(llvm::Value *, llvm::Value *)> &body) {
    int64_t lanes = runLanes();
    ctx_.loop(c(count / lanes), [&](llvm::Value *v) { body(mul(v, lanes), nullptr); });
    if (int64_t tail = count % lanes)
      body(c(count - tail), firstLanes(tail, lanes));
  }

  /// A mask of `lanes` with the first `count` on.
  llvm::Value *firstLanes(int64_t count, int64_t lanes) {
    std::vector<llvm::Constant *> on;
    for (int64_t i = 0; i < lanes; ++i)
      on.push_back(b_.getInt1(i < count));
    return llvm::ConstantVector::get(on);
  }

  /// dst[0, count) = src[0, count) a vector at a time (LLVM left these row
  /// copies scalar: a row is too short for its loop vectorizer, and src
  /// and dst might overlap for all it knows).
  void copyRun(llvm::Value *src, llvm::Value *dst, int64_t count) {
    vectorRun(count, [&](llvm::Value *at, llvm::Value *mask) {
      llvm::Value *row = loadElements(runType(), elementAt(src, at), mask);
      storeElements(row, elementAt(dst, at), mask);
    });
  }

  /// dy[n] (O x OH·OW) onto the grid position-major, dyGrid[q·stride + o]
  /// with q = oh·wp + ow (transposedGradientStride), for the positions
  /// of whole blocks of `lanes` (one SIMD vector): each block of lanes
  /// channels x lanes positions loaded as lanes vectors, transposed by
  /// log2(lanes) rounds of shuffles (round b swaps bit b of the row and the
  /// column index where they differ), and stored a position's channels at
  /// a time. Returns the positions copied: 0 where O is not a multiple of
  /// the lanes (or no SIMD), the caller copies the rest.
  int64_t transposeBlocks(llvm::Value *dy, llvm::Value *dyGrid, int64_t wp, int64_t stride) {
    int64_t lanes = simdLanes();
    int64_t blocks = p() / lanes;
    if (lanes < 4 || d_.o % lanes != 0 || blocks == 0)
      return 0;
    auto *vec = llvm::FixedVectorType::get(ctx_.fp(), static_cast<unsigned>(lanes));
    llvm::Align align(ctx_.fp()->getPrimitiveSizeInBits() / 8);
    ctx_.loop(c(d_.o / lanes), [&](llvm::Value *channelBlock) {
      llvm::Value *o0 = mul(channelBlock, lanes);
      ctx_.loop(c(blocks), [&](llvm::Value *block) {
        llvm::Value *s0 = mul(block, lanes);
        std::vector<llvm::Value *> rows;
        for (int64_t j = 0; j < lanes; ++j)
          rows.push_back(
              b_.CreateAlignedLoad(vec, elementAt(dy, add(mul(add(o0, c(j)), p()), s0)), align));
        rows = emitTranspose(b_, std::move(rows));
        for (int64_t i = 0; i < lanes; ++i) { // position s0 + i: its grid column q
          llvm::Value *at = add(s0, c(i));
          llvm::Value *q = add(at, mul(b_.CreateUDiv(at, c(d_.ow)), wp - d_.ow));
          b_.CreateAlignedStore(rows[static_cast<size_t>(i)],
                                elementAt(dyGrid, add(mul(q, stride), o0)), align);
        }
      });
    });
    return blocks * lanes;
  }

  /// dy[n] (O x OH·OW) position-major onto a grid of wp columns a row,
  /// dyGrid[q·stride + o] for q = oh·wp + ow. Written in order: a
  /// position's channels are a run (and the lines of dy they read stay in
  /// cache from one position to the next; channel by channel, every store
  /// missed). Blocks of lanes x lanes first, transposed in registers; the
  /// positions after the last whole block one by one.
  void transposeImage(llvm::Value *dy, llvm::Value *dyGrid, int64_t wp, int64_t stride) {
    int64_t blocked = transposeBlocks(dy, dyGrid, wp, stride);
    ctx_.loop(c(p() - blocked), [&](llvm::Value *i) {
      llvm::Value *at = add(i, c(blocked));
      llvm::Value *oh = b_.CreateUDiv(at, c(d_.ow)), *ow = b_.CreateURem(at, c(d_.ow));
      ctx_.loop(c(d_.o), [&](llvm::Value *o) {
        llvm::Value *v =
            b_.CreateLoad(ctx_.fp(), elementAt(dy, add(mul(add(mul(o, d_.oh), oh), d_.ow), ow)));
        llvm::Value *q = add(mul(oh, wp), ow);
        b_.CreateStore(v, elementAt(dyGrid, add(mul(q, stride), o)));
      });
    });
  }

  /// dy[n]: in memory, or computed here by the fused max pooling gradient
  /// (Fuse.cpp: absorbPoolGradients) and its epilogue into the workspace's
  /// dy, after `dyGrid`'s part.
  llvm::Value *pooledGradient(llvm::Value *n, llvm::Value *dyGrid, const Workspace &w) {
    llvm::Value *plane = mul(n, d_.o * p());
    size_t at = fusedPoolGradient(ctx_.graph, kernel());
    if (at == 0)
      return elementAt(ctx_.pointer(n_.inputs[1]), plane);
    llvm::Value *image = elementAt(dyGrid, c(w.transposed));
    poolImage(at, n, {n_.inputs[1], image, plane}, {});
    return image;
  }

  /// The kernel's node `at` (a tiling max pooling or its gradient fused
  /// after the front) on image n, writing `redirect.value` (if any) there;
  /// a pooling reading its input from `source.base` if given.
  void poolImage(size_t at, llvm::Value *n, const Redirect &redirect, const Redirect &source) {
    WindowEmitter pool(ctx_, kernel().nodes[at]);
    pool.setup();
    pool.redirected_ = redirect;
    pool.source_ = source;
    pool.tiledMaxPool(n, add(n, c(1)));
  }

  void convImplicit(llvm::Value *lo, llvm::Value *hi, llvm::Value *chunk) {
    Grid g = grid();
    Workspace w = layout();
    llvm::Value *image = columnsWorkspace(); // the padded image
    zeroFill(image, w.columns);
    llvm::Value *table = rowTable(g);
    llvm::Value *dyGrid = nullptr, *partial = nullptr;
    if (n_.op == Op::Conv2dGradWeight) {
      dyGrid = elementAt(image, c(w.columns));
      // Its dropped columns read as zeros by the dot GEMM (the transposed
      // one skips them: _kgrid).
      if (!transposedWeightGradient(n_.shape, true) && !dyIsGrid(ctx_.graph, kernel()))
        zeroFill(dyGrid, w.transposed);
      partial = partialWorkspace(chunk);
      zeroFill(partial, w.partial);
      if (bias()) // the bias gradient's row of the image: ones
        fill(elementAt(image, c(g.padded.elements())), g.columns(), 1.0);
    }
    auto onGrid = [&](GemmCall call, int64_t valid, int64_t ldc) {
      call.gridWidth = c(g.wp());
      call.gridValid = c(valid);
      call.ldc = c(ldc);
      return call;
    };
    ctx_.loop(
        b_.CreateSub(hi, lo),
        [&](llvm::Value *i) {
          llvm::Value *n = add(lo, i);
          size_t pooled =
              n_.op == Op::Conv2dGradInput ? fusedPoolGradient(ctx_.graph, kernel()) : 0;
          if (pooled) // dy computed here: into the (unpadded) image as well
            poolImage(pooled, n, {g.src, image, mul(n, g.padded.channels * g.h * g.w)}, {});
          else
            copyImage(g, n, image);
          switch (n_.op) {
          case Op::Conv2d: { // y[n] (O x P) = W (O x K) · columns
            llvm::Value *plane = mul(n, d_.o * p());
            llvm::Value *y = ctx_.pointer(self_) ? elementAt(ctx_.pointer(self_), plane) : nullptr;
            GemmCall call = onGrid({false, false, false, ctx_.pointer(n_.inputs[1]), image, y,
                                    c(d_.o), c(g.columns()), c(k()), c(k()), c(0)},
                                   d_.ow, p());
            call.bRows = table;
            size_t at = fusedPooling(ctx_.graph, kernel());
            Redirect pooled; // the pooling's input (the epilogue's result): only there
            if (pooledInWorkspace(ctx_.graph, kernel()))
              pooled = {ctx_.graph.node(kernel().nodes[at]).inputs[0],
                        elementAt(image, c(w.columns + w.transposed + w.dy)), plane};
            redirected_ = pooled;
            forwardProduct(call, plane);
            if (at) // image n, in cache
              poolImage(at, n, {}, pooled);
            break;
          }
          case Op::Conv2dGradInput: { // dx[n] (C x HW) = W' (C x O·KH·KW) · dy's columns
            int64_t rows = d_.o * geo_.kh * geo_.kw, positions = d_.h * d_.w;
            llvm::Value *flippedW = sharedWorkspace(); // bound before dx, as always
            llvm::Value *dx = elementAt(ctx_.pointer(self_), mul(n, d_.c * positions));
            if (!splitByKernelRow(g)) {
              GemmCall call = onGrid({false, false, false, flippedW, image, dx, c(d_.c),
                                      c(g.columns()), c(rows), c(rows), c(0)},
                                     d_.w, positions);
              call.bRows = table;
              emitGemmCall(ctx_, call);
              break;
            }
            // dx[n] += W'[:, kh] (C x O·KW) · dy's columns of kernel row kh,
            // over the output rows it reaches, kh by kh.
            zeroFill(dx, d_.c * positions);
            int64_t part = d_.o * geo_.kw;
            for (int64_t kh = 0; kh < geo_.kh; ++kh) {
              auto [first, end] = rowsReached(g, kh);
              if (end <= first)
                continue;
              GemmCall call =
                  onGrid({false, false, true, elementAt(flippedW, c(kh * part)),
                          elementAt(image, c(first * g.wp())), elementAt(dx, c(first * d_.w)),
                          c(d_.c), c((end - first - 1) * g.wp() + d_.w), c(part), c(rows), c(0)},
                         d_.w, positions);
              call.bRows = b_.CreateInBoundsGEP(b_.getInt32Ty(), table, c(kh * part));
              emitGemmCall(ctx_, call);
            }
            break;
          }
          default: { // Conv2dGradWeight: dy[n] onto the grid, then the product
            bool computed = fusedLoop(ctx_.graph, kernel()) != 0;
            llvm::Value *dy = computed ? nullptr : pooledGradient(n, dyGrid, w);
            bool transposed = transposedWeightGradient(n_.shape, true);
            int64_t stride = transposedGradientStride(d_.o); // of dyᵀ's rows
            if (transposed)
              transposeImage(dy, dyGrid, g.wp(), stride);
            else if (dyIsGrid(ctx_.graph, kernel()))   // computed here, without
              dyGrid = dy;                             // dropped columns: the grid
            else if (computed)
              gradientOnGrid(n, dyGrid, g);
            else
              ctx_.loop(c(d_.o), [&](llvm::Value *o) {
                ctx_.loop(c(d_.oh), [&](llvm::Value *oh) {
                  llvm::Value *row = add(mul(o, d_.oh), oh);
                  copyRun(elementAt(dy, mul(row, d_.ow)),
                          elementAt(dyGrid, add(mul(o, g.columns()), mul(oh, g.wp()))), d_.ow);
                });
              });
            GemmCall call;
            // With the bias gradient, K + 1 rows of columns: the last all ones.
            if (transposed) { // dWᵀ (K x O) += columns · dyᵀ
              call = {false,           false,   true,     image, dyGrid,   partial,
                      c(k() + bias()), c(d_.o), c(d_.oh), c(0),  c(stride)};
              call.aRows = table;
              call.aRun = geo_.kw;         // a kernel row's offsets: consecutive (rowTable)
              call.depthWidth = c(g.wp()); // without the dropped columns
              call.depthValid = c(d_.ow);
            } else { // dW (O x K) += dy · columnsᵀ
              call = {false,          true,           true,    dyGrid,
                      image,          partial,        c(d_.o), c(k() + bias()),
                      c(g.columns()), c(g.columns()), c(0)};
              call.bRows = table;
            }
            emitGemmCall(ctx_, call);
            break;
          }
          }
        },
        "n");
  }

public:
  /// Before the chunks: the flipped input gradient's weights, W'[c, o,
  /// kh, kw] = W[o, c, KH - 1 - kh, KW - 1 - kw].
  void prepare() {
    if (auto t = winograd()) {
      if (!t->weightGradient)
        winogradWeights(*t);
      return;
    }
    if (!conv_ || !flipped())
      return;
    llvm::Value *flippedW = sharedWorkspace();
    bool byKernelRow = implicit() && splitByKernelRow(grid()); // (c, kh, o, kw)
    ctx_.loop(c(d_.c), [&](llvm::Value *ch) {
      ctx_.loop(c(d_.o), [&](llvm::Value *o) {
        for (int64_t kh = 0; kh < geo_.kh; ++kh)
          for (int64_t kw = 0; kw < geo_.kw; ++kw) {
            llvm::Value *from = weightIndex(o, ch, c(geo_.kh - 1 - kh), c(geo_.kw - 1 - kw));
            llvm::Value *to = byKernelRow ? add(mul(add(mul(ch, geo_.kh), c(kh)), d_.o * geo_.kw),
                                                add(mul(o, geo_.kw), c(kw)))
                                          : add(mul(add(mul(ch, d_.o), o), geo_.kh * geo_.kw),
                                                c(kh * geo_.kw + kw));
            b_.CreateStore(ctx_.load(n_.inputs[1], from), elementAt(flippedW, to));
          }
      });
    });
  }

  /// The weight gradient: dW = the chunks' partial sums, in chunk order;
  /// with the bias gradient, db from their last row (column) likewise.
  /// The partial sums are read in their order, a vector at a time (each
  /// element added up over the chunks as alone): element by element in
  /// dW's order, the transposed sums' loads went from chunk to chunk and
  /// row to row, each a cache miss (the course CNN's last convolution:
  /// 16 partial sums of 295 KB; 7% of the training step).
  void finish(llvm::Value *chunks) {
    if (n_.op != Op::Conv2dGradWeight)
      return;
    if (auto t = winograd()) {
      winogradWeightsFinish(*t, chunks);
      return;
    }
    llvm::Value *first = partialWorkspace(c(0));
    int64_t rows = k() + bias(); // of the partial sums (K x O transposed, else O x K)
    bool transposed = transposedWeightGradient(n_.shape, implicit());
    llvm::Type *type = runType();
    llvm::Value *dW = ctx_.pointer(self_);
    llvm::Value *db = bias() ? ctx_.pointer(fusedBiasSum(ctx_.graph, kernel())) : nullptr;
    // The total of the partial sums' elements [t, t + lanes) (lanes on in
    // `mask`), or of element t as `as` a scalar.
    auto total = [&](llvm::Value *t, llvm::Value *mask, llvm::Type *as = nullptr) {
      return ctx_.sumOverChunks(chunks, [&](llvm::Value *chunk) {
        return loadElements(as ? as : type, elementAt(first, add(mul(chunk, layout().partial), t)),
                            mask);
      });
    };
    if (!transposed) { // O x (K + bias): dW's rows, then db's element
      ctx_.loop(c(d_.o), [&](llvm::Value *o) {
        // One IR value per statement: the order of a call's arguments is
        // the compiler's (netc's IR must not depend on it).
        vectorRun(k(), [&](llvm::Value *at, llvm::Value *mask) {
          llvm::Value *sum = total(add(mul(o, rows), at), mask);
          storeElements(sum, elementAt(dW, add(mul(o, k()), at)), mask);
        });
        if (!db)
          return;
        llvm::Value *sum = total(add(mul(o, rows), c(k())), nullptr, ctx_.fp());
        b_.CreateStore(sum, elementAt(db, o));
      });
      return;
    }
    // (K + bias) x O: row kk is dW's column kk, the last row db.
    ctx_.loop(c(k()), [&](llvm::Value *kk) {
      vectorRun(d_.o, [&](llvm::Value *at, llvm::Value *mask) {
        scatterColumn(total(add(mul(kk, d_.o), at), mask), dW, at, kk, mask);
      });
    });
    if (db)
      vectorRun(d_.o, [&](llvm::Value *at, llvm::Value *mask) {
        llvm::Value *sum = total(add(c(k() * d_.o), at), mask);
        storeElements(sum, elementAt(db, at), mask);
      });
  }

  /// x, the elements of rows [o, o + lanes) of dW (O x K) in column kk
  /// (lanes on in `mask`; or the element of row o).
  void scatterColumn(llvm::Value *x, llvm::Value *dW, llvm::Value *o, llvm::Value *kk,
                     llvm::Value *mask) {
    auto *vec = llvm::dyn_cast<llvm::FixedVectorType>(x->getType());
    if (!vec) {
      b_.CreateStore(x, elementAt(dW, add(mul(o, k()), kk)));
      return;
    }
    std::vector<llvm::Constant *> lanes;
    for (unsigned i = 0; i < vec->getNumElements(); ++i)
      lanes.push_back(b_.getInt64(i));
    llvm::Value *rowsOf = b_.CreateAdd(b_.CreateVectorSplat(vec->getNumElements(), o),
                                       llvm::ConstantVector::get(lanes));
    llvm::Value *scaled = b_.CreateMul(rowsOf, b_.CreateVectorSplat(vec->getNumElements(), c(k())));
    llvm::Value *at = b_.CreateAdd(scaled, b_.CreateVectorSplat(vec->getNumElements(), kk));
    llvm::Value *to = b_.CreateInBoundsGEP(ctx_.fp(), dW, at);
    b_.CreateMaskedScatter(x, to, llvm::Align(ctx_.fp()->getPrimitiveSizeInBits() / 8), mask);
  }

private:
  llvm::Value *c(int64_t v) const { return ctx_.i64(v); }
  llvm::Value *add(llvm::Value *a, llvm::Value *b) { return b_.CreateAdd(a, b); }
  llvm::Value *mul(llvm::Value *a, int64_t k) { return b_.CreateMul(a, c(k)); }
  llvm::Value *smax(llvm::Value *a, llvm::Value *b) {
    return b_.CreateSelect(b_.CreateICmpSGT(a, b), a, b);
  }
  llvm::Value *smin(llvm::Value *a, llvm::Value *b) {
    return b_.CreateSelect(b_.CreateICmpSLT(a, b), a, b);
  }

  /// The kernel offsets k in [0, size) with start + k inside [0, extent):
  /// the first and how many.
  std::pair<llvm::Value *, llvm::Value *> inside(llvm::Value *start, int64_t size, int64_t extent) {
    llvm::Value *lo = smax(c(0), b_.CreateNeg(start));
    llvm::Value *hi = smin(c(size), b_.CreateSub(c(extent), start));
    return {lo, smax(c(0), b_.CreateSub(hi, lo))};
  }

  llvm::Value *imageIndex(llvm::Value *n, llvm::Value *ch, llvm::Value *ih, llvm::Value *iw) {
    return add(mul(add(mul(add(mul(n, d_.c), ch), d_.h), ih), d_.w), iw);
  }
  llvm::Value *windowIndex(llvm::Value *n, llvm::Value *o, llvm::Value *oh, llvm::Value *ow) {
    return add(mul(add(mul(add(mul(n, d_.o), o), d_.oh), oh), d_.ow), ow);
  }
  llvm::Value *weightIndex(llvm::Value *o, llvm::Value *ch, llvm::Value *kh, llvm::Value *kw) {
    return add(mul(add(mul(add(mul(o, d_.c), ch), geo_.kh), kh), geo_.kw), kw);
  }

  /// Pooling without tiling windows: images [lo, hi), channel by channel.
  void emitNest(llvm::Value *lo, llvm::Value *hi) {
    ctx_.loop(
        b_.CreateSub(hi, lo),
        [&](llvm::Value *i) {
          ctx_.loop(
              c(d_.c),
              [&](llvm::Value *o) {
                ctx_.loop(
                    c(d_.oh),
                    [&](llvm::Value *oh) {
                      ctx_.loop(
                          c(d_.ow), [&](llvm::Value *ow) { position(add(lo, i), o, oh, ow); },
                          "ow");
                    },
                    "oh");
              },
              "o");
        },
        "n");
  }

  /// One output position of pooling channel o: its window, then its result
  /// (or its scatter).
  void position(llvm::Value *n, llvm::Value *o, llvm::Value *oh, llvm::Value *ow) {
    llvm::Type *fp = ctx_.fp();
    llvm::Value *y = windowIndex(n, o, oh, ow);
    // The window's first row and column in the image (before it if padded).
    llvm::Value *ihBase = b_.CreateSub(mul(oh, geo_.sh), c(geo_.pt));
    llvm::Value *iwBase = b_.CreateSub(mul(ow, geo_.sw), c(geo_.pl));
    if (n_.op == Op::WindowTake || n_.op == Op::WindowTakeGrad) {
      takeGiven(n, o, ihBase, iwBase, y);
      return;
    }
    bool max = n_.op == Op::MaxPool2d || n_.op == Op::MaxPool2dIndex;
    b_.CreateStore(llvm::ConstantFP::get(fp, max ? -std::numeric_limits<double>::infinity() : 0.0),
                   acc_);
    b_.CreateStore(c(-1), bestAt_);
    auto [khLo, khCount] = inside(ihBase, geo_.kh, d_.h);
    auto [kwLo, kwCount] = inside(iwBase, geo_.kw, d_.w);
    llvm::Value *dy = nullptr;
    if (n_.op == Op::AvgPool2dGrad)
      dy = b_.CreateFDiv(ctx_.load(n_.inputs[0], y),
                         llvm::ConstantFP::get(fp, static_cast<double>(geo_.kh * geo_.kw)));
    ctx_.loop(
        khCount,
        [&](llvm::Value *i) {
          llvm::Value *kh = add(khLo, i), *ih = add(ihBase, kh);
          ctx_.loop(
              kwCount,
              [&](llvm::Value *j) {
                llvm::Value *kw = add(kwLo, j), *iw = add(iwBase, kw);
                element(imageIndex(n, o, ih, iw), dy, kh, kw);
              },
              "kw");
        },
        "kh");
    llvm::Value *acc = b_.CreateLoad(fp, acc_);
    switch (n_.op) {
    case Op::AvgPool2d:
      ctx_.store(
          self_, y,
          b_.CreateFDiv(acc, llvm::ConstantFP::get(fp, static_cast<double>(geo_.kh * geo_.kw))));
      break;
    case Op::MaxPool2d:
      ctx_.store(self_, y, acc);
      break;
    case Op::MaxPool2dIndex:
      ctx_.store(self_, y, b_.CreateSIToFP(b_.CreateLoad(ctx_.i64(), bestOffset_), fp));
      break;
    default:
      break;
    }
  }

  /// The element of the window whose first row and column are ihBase and
  /// iwBase that operand `offsets` names (kh·KW + kw): taken (WindowTake),
  /// or dy added at it.
  void takeGiven(llvm::Value *n, llvm::Value *o, llvm::Value *ihBase, llvm::Value *iwBase,
                 llvm::Value *y) {
    bool take = n_.op == Op::WindowTake;
    llvm::Value *given = ctx_.load(n_.inputs[take ? 1 : 0], y);
    llvm::Value *offset = b_.CreateFPToSI(given, ctx_.i64());
    // One IR value per statement: the order of a call's arguments is the
    // host compiler's.
    llvm::Value *kh = b_.CreateSDiv(offset, c(geo_.kw));
    llvm::Value *kw = b_.CreateSRem(offset, c(geo_.kw));
    llvm::Value *ih = add(ihBase, kh);
    llvm::Value *iw = add(iwBase, kw);
    llvm::Value *x = imageIndex(n, o, ih, iw);
    if (take) {
      ctx_.store(self_, y, ctx_.load(n_.inputs[0], x));
      return;
    }
    llvm::Value *sum = ctx_.load(self_, x);
    sum = b_.CreateFAdd(sum, ctx_.load(n_.inputs[1], y));
    ctx_.store(self_, x, sum);
  }

  /// One window element at image index x, row kh and column kw of its
  /// window.
  void element(llvm::Value *x, llvm::Value *dy, llvm::Value *kh, llvm::Value *kw) {
    llvm::Type *fp = ctx_.fp();
    switch (n_.op) {
    case Op::AvgPool2d:
      b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(fp, acc_), ctx_.load(n_.inputs[0], x)), acc_);
      return;
    case Op::AvgPool2dGrad:
      ctx_.store(self_, x, b_.CreateFAdd(ctx_.load(self_, x), dy));
      return;
    case Op::MaxPool2d:
    case Op::MaxPool2dIndex: {
      // PyTorch's rule: a larger value or a NaN; the first such wins ties.
      llvm::Value *v = ctx_.load(n_.inputs[0], x), *best = b_.CreateLoad(fp, acc_);
      llvm::Value *first = b_.CreateICmpSLT(b_.CreateLoad(ctx_.i64(), bestAt_), c(0));
      llvm::Value *take =
          b_.CreateOr(first, b_.CreateOr(b_.CreateFCmpOGT(v, best), b_.CreateFCmpUNO(v, v)));
      // The first element with -inf as the maximum so far, as PyTorch starts.
      llvm::Value *takeValue = b_.CreateOr(b_.CreateFCmpOGT(v, best), b_.CreateFCmpUNO(v, v));
      b_.CreateStore(b_.CreateSelect(takeValue, v, best), acc_);
      b_.CreateStore(b_.CreateSelect(take, x, b_.CreateLoad(ctx_.i64(), bestAt_)), bestAt_);
      if (n_.op == Op::MaxPool2dIndex) {
        llvm::Value *offset = add(mul(kh, geo_.kw), kw);
        llvm::Value *kept = b_.CreateLoad(ctx_.i64(), bestOffset_);
        b_.CreateStore(b_.CreateSelect(take, offset, kept), bestOffset_);
      }
      return;
    }
    default:
      return;
    }
  }

  const EmitContext &ctx_;
  llvm::IRBuilder<> &b_;
  const Node &n_;
  ValueId self_ = kNoValue;
  WindowGeometry geo_;
  Dims d_{};
  bool conv_ = false;
  llvm::AllocaInst *acc_ = nullptr, *bestAt_ = nullptr, *bestOffset_ = nullptr;
  Redirect redirected_;
  Redirect source_; ///< where a pooling reads image n of its input, if not in memory
};

} // namespace

llvm::Value *windowChunkCount(const EmitContext &ctx, const Kernel &kernel) {
  WindowEmitter e(ctx, kernel.nodes.front());
  e.setup();
  // Whole outer indices (images), a chunk about 2M window elements of a
  // convolution (multiply-adds) or 16K of a pooling (a load and a compare
  // each, as a loop kernel's elements: with 2M, LeNet-5's poolings and
  // their gradients, 0.6M each, ran on one thread).
  llvm::Value *work = ctx.b.CreateMul(e.outerExtent(), e.workPerOuter());
  int64_t perChunk = e.convolution() ? 21 : 14; // log2
  return ctx.chunkCount(ctx.b.CreateLShr(work, ctx.i64(perChunk)), e.outerExtent());
}

void emitWindowChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                     llvm::Value *chunks) {
  WindowEmitter e(ctx, kernel.nodes.front());
  e.setup();
  auto [lo, hi] = ctx.chunkRange(chunk, chunks, e.outerExtent(), 1);
  e.run(lo, hi, chunk);
}

void emitWindowPrepare(const EmitContext &ctx, const Kernel &kernel) {
  WindowEmitter e(ctx, kernel.nodes.front());
  e.setup();
  e.prepare();
}

void emitWindowFinish(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunks) {
  WindowEmitter e(ctx, kernel.nodes.front());
  e.setup();
  e.finish(chunks);
}

} // namespace netc
