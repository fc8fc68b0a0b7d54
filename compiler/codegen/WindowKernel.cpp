// WindowKernel.cpp - convolutions and pooling over [N, C, H, W], as direct
// loop nests.
//
// Padding adds zeros, so it is skipped: only window positions inside the
// image are visited. Pooling and the weight gradient go output position by
// output position, through the window in the reference interpreter's order
// (channel, kernel row, kernel column). The forward convolution and the
// input gradient go weight element by weight element over whole output
// rows, contiguous runs the vectorizer takes; each output still sums in a
// fixed order. The outer loop (images, or output channels for the weight
// gradient) is split into chunks for the thread pool; every result element
// belongs to one chunk, so results depend on nothing but the shapes. This
// is the first, simple lowering, without tiling; the faster one (the
// windows through the GEMM kernels) replaces this file without touching the
// ops.
#include "compiler/codegen/Kernels.h"
#include "compiler/graph/Ops.h"

#include <limits>

namespace netc {

namespace {

struct Dims {
  llvm::Value *n;    ///< the batch
  int64_t c, h, w;   ///< the image side [N, C, H, W]
  int64_t o, oh, ow; ///< the window side [N, O, OH, OW]
};

class WindowEmitter {
public:
  WindowEmitter(const EmitContext &ctx, ValueId self)
      : ctx_(ctx), b_(ctx.b), n_(ctx.graph.node(self)), self_(self) {}

  /// The chunks split the outer loop: the images, or for the weight
  /// gradient (a sum over the images) the output channels, so every result
  /// element is computed by one chunk, in one order.
  llvm::Value *outerExtent() const { return n_.op == Op::Conv2dGradWeight ? ctx_.i64(d_.o) : d_.n; }

  /// Window elements one outer index visits: the work a chunk is sized by.
  llvm::Value *workPerOuter() const {
    int64_t perWindow = geo_.kh * geo_.kw * (conv_ ? d_.c : 1);
    if (n_.op == Op::Conv2dGradWeight) // per output channel, all images
      return ctx_.b.CreateMul(d_.n, ctx_.i64(d_.oh * d_.ow * perWindow));
    return ctx_.i64((conv_ ? d_.o : d_.c) * d_.oh * d_.ow * perWindow);
  }

  void run() { run(ctx_.i64(0), outerExtent()); }

  void setup() {
    const Graph &g = ctx_.graph;
    const Shape *weight = nullptr;
    Shape image, windows;
    switch (n_.op) {
    case Op::Conv2d:
    case Op::MaxPool2d:
    case Op::AvgPool2d:
      image = g.shape(n_.inputs[0]);
      windows = n_.shape;
      break;
    case Op::Conv2dGradInput:
    case Op::AvgPool2dGrad:
      image = n_.attrs.shape;
      windows = g.shape(n_.inputs[0]);
      break;
    default: // Conv2dGradWeight, MaxPool2dGrad: x, dy
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

  /// The outer indices [lo, hi).
  void run(llvm::Value *lo, llvm::Value *hi) {
    llvm::IRBuilder<> entry(&ctx_.fn->getEntryBlock(), ctx_.fn->getEntryBlock().begin());
    acc_ = entry.CreateAlloca(ctx_.fp());
    bestAt_ = entry.CreateAlloca(ctx_.i64());
    bool scatters = n_.op == Op::Conv2dGradInput || n_.op == Op::Conv2dGradWeight ||
                    n_.op == Op::MaxPool2dGrad || n_.op == Op::AvgPool2dGrad;
    if (scatters) { // the gradients add into a zeroed result: this chunk's part
      int64_t part = n_.op == Op::Conv2dGradWeight ? d_.c * geo_.kh * geo_.kw : d_.c * d_.h * d_.w;
      llvm::Value *first = b_.CreateMul(lo, c(part));
      ctx_.loop(b_.CreateMul(b_.CreateSub(hi, lo), c(part)), [&](llvm::Value *i) {
        ctx_.store(self_, add(first, i), llvm::ConstantFP::get(ctx_.fp(), 0.0));
      });
    }
    if (n_.op == Op::Conv2d)
      convForward(lo, hi);
    else if (n_.op == Op::Conv2dGradInput)
      convGradInput(lo, hi);
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

  /// The products of one weight element w[o, c, kh, kw] (value `wv`) with
  /// every input it meets in image n: `body(x, y)` for each pair of an image
  /// index x and an index y into the window plane that starts at `plane`,
  /// output row by output row (contiguous runs the vectorizer takes).
  template <typename Body>
  void weightElement(llvm::Value *n, llvm::Value *ch, llvm::Value *plane, llvm::Value *kh,
                     llvm::Value *kw, Body body) {
    auto [ohFirst, ohCount] = outputsReaching(kh, geo_.sh, geo_.pt, d_.h, d_.oh);
    auto [owFirst, owCount] = outputsReaching(kw, geo_.sw, geo_.pl, d_.w, d_.ow);
    ctx_.loop(
        ohCount,
        [&](llvm::Value *r) {
          llvm::Value *oh = add(ohFirst, r);
          llvm::Value *ih = add(b_.CreateSub(mul(oh, geo_.sh), c(geo_.pt)), kh);
          llvm::Value *yRow = add(plane, mul(oh, d_.ow));
          llvm::Value *xRow = mul(add(mul(add(mul(n, d_.c), ch), d_.h), ih), d_.w);
          llvm::Value *xBase = add(xRow, b_.CreateSub(kw, c(geo_.pl)));
          ctx_.loop(
              owCount,
              [&](llvm::Value *q) {
                llvm::Value *ow = add(owFirst, q);
                body(add(xBase, mul(ow, geo_.sw)), add(yRow, ow));
              },
              "ow");
        },
        "oh");
  }

  /// Every weight element of output channel o and input channel ch, in
  /// (kernel row, kernel column) order: `body(wv, kh, kw)`.
  template <typename Body> void kernelElements(llvm::Value *o, llvm::Value *ch, Body body) {
    ctx_.loop(
        c(geo_.kh),
        [&](llvm::Value *kh) {
          ctx_.loop(
              c(geo_.kw),
              [&](llvm::Value *kw) {
                body(ctx_.load(n_.inputs[1], weightIndex(o, ch, kh, kw)), kh, kw);
              },
              "kw");
        },
        "kh");
  }

  /// y += a · b at y of the result.
  void accumulate(llvm::Value *y, llvm::Value *a, llvm::Value *b) {
    ctx_.store(self_, y, b_.CreateFAdd(ctx_.load(self_, y), b_.CreateFMul(a, b)));
  }

  // The forward convolution of images [lo, hi), weight element by weight
  // element: each adds its products to a whole output plane. Every output
  // still sums its products in (channel, kernel row, kernel column) order,
  // as the reference does.
  void convForward(llvm::Value *lo, llvm::Value *hi) {
    ValueId x = n_.inputs[0];
    ctx_.loop(
        b_.CreateSub(hi, lo),
        [&](llvm::Value *i) {
          llvm::Value *n = add(lo, i);
          ctx_.loop(
              c(d_.o),
              [&](llvm::Value *o) {
                llvm::Value *plane = mul(add(mul(n, d_.o), o), d_.oh * d_.ow);
                ctx_.loop(
                    c(d_.oh * d_.ow),
                    [&](llvm::Value *e) {
                      ctx_.store(self_, add(plane, e), llvm::ConstantFP::get(ctx_.fp(), 0.0));
                    },
                    "e");
                ctx_.loop(
                    c(d_.c),
                    [&](llvm::Value *ch) {
                      kernelElements(o, ch, [&](llvm::Value *wv, llvm::Value *kh, llvm::Value *kw) {
                        weightElement(n, ch, plane, kh, kw, [&](llvm::Value *xi, llvm::Value *yi) {
                          accumulate(yi, ctx_.load(x, xi), wv);
                        });
                      });
                    },
                    "c");
              },
              "o");
        },
        "n");
  }

  // The input gradient of images [lo, hi), weight element by weight
  // element: dx[n, c, ih, iw] += dy[n, o, oh, ow] · w[o, c, kh, kw] over
  // whole output rows. Each dx element sums in (output channel, kernel row,
  // kernel column, output row, output column) order.
  void convGradInput(llvm::Value *lo, llvm::Value *hi) {
    ValueId dy = n_.inputs[0];
    ctx_.loop(
        b_.CreateSub(hi, lo),
        [&](llvm::Value *i) {
          llvm::Value *n = add(lo, i);
          ctx_.loop(
              c(d_.c),
              [&](llvm::Value *ch) {
                ctx_.loop(
                    c(d_.o),
                    [&](llvm::Value *o) {
                      llvm::Value *plane = mul(add(mul(n, d_.o), o), d_.oh * d_.ow);
                      kernelElements(o, ch, [&](llvm::Value *wv, llvm::Value *kh, llvm::Value *kw) {
                        weightElement(n, ch, plane, kh, kw, [&](llvm::Value *xi, llvm::Value *yi) {
                          accumulate(xi, ctx_.load(dy, yi), wv);
                        });
                      });
                    },
                    "o");
              },
              "c");
        },
        "n");
  }

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

  void emitNest(llvm::Value *lo, llvm::Value *hi) {
    auto windows = [&](llvm::Value *n, llvm::Value *o) {
      ctx_.loop(
          c(d_.oh),
          [&](llvm::Value *oh) {
            ctx_.loop(
                c(d_.ow), [&](llvm::Value *ow) { position(n, o, oh, ow); }, "ow");
          },
          "oh");
    };
    llvm::Value *count = b_.CreateSub(hi, lo);
    // Pooling runs over the channels, a convolution over its outputs.
    llvm::Value *channels = c(conv_ ? d_.o : d_.c);
    if (n_.op == Op::Conv2dGradWeight) // channel outside, images inside: a chunk owns dw[o]
      ctx_.loop(
          count,
          [&](llvm::Value *i) {
            ctx_.loop(
                d_.n, [&](llvm::Value *n) { windows(n, add(lo, i)); }, "n");
          },
          "o");
    else
      ctx_.loop(
          count,
          [&](llvm::Value *i) {
            ctx_.loop(
                channels, [&](llvm::Value *o) { windows(add(lo, i), o); }, "o");
          },
          "n");
  }

  /// One output position (pooling, the weight gradient): its window, then
  /// its result (or its scatter).
  void position(llvm::Value *n, llvm::Value *o, llvm::Value *oh, llvm::Value *ow) {
    llvm::Type *fp = ctx_.fp();
    llvm::Value *y = windowIndex(n, o, oh, ow);
    b_.CreateStore(llvm::ConstantFP::get(fp, n_.op == Op::MaxPool2d || n_.op == Op::MaxPool2dGrad
                                                 ? -std::numeric_limits<double>::infinity()
                                                 : 0.0),
                   acc_);
    b_.CreateStore(c(-1), bestAt_);
    auto [khLo, khCount] = inside(b_.CreateSub(mul(oh, geo_.sh), c(geo_.pt)), geo_.kh, d_.h);
    auto [kwLo, kwCount] = inside(b_.CreateSub(mul(ow, geo_.sw), c(geo_.pl)), geo_.kw, d_.w);
    llvm::Value *ihBase = b_.CreateSub(mul(oh, geo_.sh), c(geo_.pt));
    llvm::Value *iwBase = b_.CreateSub(mul(ow, geo_.sw), c(geo_.pl));
    llvm::Value *dy = nullptr;
    if (n_.op == Op::AvgPool2dGrad)
      dy = ctx_.load(n_.inputs[0], y);
    if (n_.op == Op::Conv2dGradWeight)
      dy = ctx_.load(n_.inputs[1], y);
    if (n_.op == Op::AvgPool2dGrad)
      dy = b_.CreateFDiv(dy, llvm::ConstantFP::get(fp, static_cast<double>(geo_.kh * geo_.kw)));
    ctx_.loop(
        c(conv_ ? d_.c : 1),
        [&](llvm::Value *ch) {
          llvm::Value *channel = conv_ ? ch : o;
          ctx_.loop(
              khCount,
              [&](llvm::Value *i) {
                llvm::Value *kh = add(khLo, i), *ih = add(ihBase, kh);
                ctx_.loop(
                    kwCount,
                    [&](llvm::Value *j) {
                      llvm::Value *kw = add(kwLo, j), *iw = add(iwBase, kw);
                      element(imageIndex(n, channel, ih, iw),
                              conv_ ? weightIndex(o, ch, kh, kw) : nullptr, dy);
                    },
                    "kw");
              },
              "kh");
        },
        "c");
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
    case Op::MaxPool2dGrad: {
      // The window's first maximum gets the adjoint (a window is never empty).
      llvm::Value *at = b_.CreateLoad(ctx_.i64(), bestAt_);
      llvm::Value *sum = b_.CreateFAdd(ctx_.load(self_, at), ctx_.load(n_.inputs[1], y));
      ctx_.store(self_, at, sum);
      break;
    }
    default:
      break;
    }
  }

  /// One window element: image index x, weight index w (weight gradient).
  void element(llvm::Value *x, llvm::Value *w, llvm::Value *dy) {
    llvm::Type *fp = ctx_.fp();
    switch (n_.op) {
    case Op::Conv2dGradWeight:
      accumulate(w, ctx_.load(n_.inputs[0], x), dy);
      return;
    case Op::AvgPool2d:
      b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(fp, acc_), ctx_.load(n_.inputs[0], x)), acc_);
      return;
    case Op::AvgPool2dGrad:
      ctx_.store(self_, x, b_.CreateFAdd(ctx_.load(self_, x), dy));
      return;
    case Op::MaxPool2d:
    case Op::MaxPool2dGrad: {
      // PyTorch's rule: a larger value or a NaN; the first such wins ties.
      llvm::Value *v = ctx_.load(n_.inputs[0], x), *best = b_.CreateLoad(fp, acc_);
      llvm::Value *first = b_.CreateICmpSLT(b_.CreateLoad(ctx_.i64(), bestAt_), c(0));
      llvm::Value *take =
          b_.CreateOr(first, b_.CreateOr(b_.CreateFCmpOGT(v, best), b_.CreateFCmpUNO(v, v)));
      // The first element with -inf as the maximum so far, as PyTorch starts.
      llvm::Value *takeValue = b_.CreateOr(b_.CreateFCmpOGT(v, best), b_.CreateFCmpUNO(v, v));
      b_.CreateStore(b_.CreateSelect(takeValue, v, best), acc_);
      b_.CreateStore(b_.CreateSelect(take, x, b_.CreateLoad(ctx_.i64(), bestAt_)), bestAt_);
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
  llvm::AllocaInst *acc_ = nullptr, *bestAt_ = nullptr;
};

} // namespace

void emitWindowKernel(const EmitContext &ctx, const Kernel &kernel) {
  WindowEmitter e(ctx, kernel.nodes.front());
  e.setup();
  e.run();
}

llvm::Value *windowChunkCount(const EmitContext &ctx, const Kernel &kernel) {
  WindowEmitter e(ctx, kernel.nodes.front());
  e.setup();
  // About 2M window elements a chunk, whole outer indices.
  llvm::Value *work = ctx.b.CreateMul(e.outerExtent(), e.workPerOuter());
  return ctx.chunkCount(ctx.b.CreateLShr(work, ctx.i64(21)), e.outerExtent());
}

void emitWindowChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                     llvm::Value *chunks) {
  WindowEmitter e(ctx, kernel.nodes.front());
  e.setup();
  auto [lo, hi] = ctx.chunkRange(chunk, chunks, e.outerExtent(), 1);
  e.run(lo, hi);
}

} // namespace netc
