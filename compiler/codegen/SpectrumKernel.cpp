// SpectrumKernel.cpp - power_spectrum: the power of the one-sided DFT of
// Hann-windowed frames, by a radix-2 FFT vectorized across frames.
//
// A block of L frames (L the vector lanes) runs as one FFT of L-wide
// vectors, each lane a frame. A real frame x of n samples is a complex
// signal of m = n / 2, z[k] = x[2k] + i x[2k+1] (windowed): its samples go
// to the kernel's workspace in bit-reversed order, log2 m stages of
// butterflies run in place (decimation in time, twiddles from a constant
// table), and the frame's spectrum comes out of Z[f] and Z[m - f]:
//   E = (Z[f] + conj Z[m - f]) / 2,  O = (Z[f] - conj Z[m - f]) / 2i,
//   X[f] = E + exp(-2 pi i f / n) O,  f = 0 .. n / 2,
// whose squared magnitude is stored. (Packing two frames into one complex
// transform instead would leak one frame's rounding into the other: a
// silent frame beside a loud one would not come out 0.) Lanes past the end
// of a partial block read the last frame and store into the workspace, so
// every row is written once. Blocks split across chunks at multiples of L:
// the bits are the same for any number of threads.
#include "compiler/codegen/Kernels.h"

#include "compiler/graph/AudioTables.h"

#include <fmt/format.h>
#include <llvm/IR/Constants.h>

#include <bit>
#include <cmath>

namespace netc {

namespace {

constexpr double kPi = 3.14159265358979323846;

class SpectrumEmitter {
public:
  SpectrumEmitter(const EmitContext &ctx, const Kernel &kernel)
      : ctx_(ctx), b_(ctx.b), self_(kernel.nodes.front()), node_(ctx.graph.node(self_)) {
    n_ = node_.attrs.window[0];
    win_ = node_.attrs.window[1];
    bins_ = n_ / 2 + 1;
    lanes_ = ctx.vectorBytes / (ctx.fp()->getPrimitiveSizeInBits() / 8);
    vec_ = llvm::FixedVectorType::get(ctx.fp(), static_cast<unsigned>(lanes_));
    rows_ = b_.CreateUDiv(ctx.numel(ctx.graph.shape(node_.inputs[0])), ctx.i64(n_));
  }

  llvm::Value *rows() const { return rows_; }
  int64_t block() const { return lanes_; }

  void emit(llvm::Value *chunk, llvm::Value *chunks) {
    auto [lo, hi] = ctx_.chunkRange(chunk, chunks, rows_, block());
    llvm::Value *re = workspace(chunk), *im = at(re, ctx_.i64(n_ * lanes_));
    llvm::Value *blocks =
        b_.CreateUDiv(b_.CreateAdd(b_.CreateSub(hi, lo), ctx_.i64(block() - 1)), ctx_.i64(block()));
    ctx_.loop(
        blocks,
        [&](llvm::Value *i) {
          llvm::Value *first = b_.CreateAdd(lo, b_.CreateMul(i, ctx_.i64(block())));
          load(first, re, im);
          transform(re, im);
          power(first, re, im);
        },
        "block");
  }

private:
  llvm::Value *c(int64_t v) const { return ctx_.i64(v); }
  llvm::Value *at(llvm::Value *base, llvm::Value *index) const {
    return b_.CreateInBoundsGEP(ctx_.fp(), base, index);
  }
  llvm::Value *loadVec(llvm::Value *base, llvm::Value *slot) const {
    return b_.CreateAlignedLoad(vec_, at(base, b_.CreateMul(slot, c(lanes_))),
                                llvm::Align(ctx_.vectorBytes));
  }
  void storeVec(llvm::Value *base, llvm::Value *slot, llvm::Value *v) const {
    b_.CreateAlignedStore(v, at(base, b_.CreateMul(slot, c(lanes_))),
                          llvm::Align(ctx_.vectorBytes));
  }
  llvm::Value *splat(llvm::Value *x) const {
    return b_.CreateVectorSplat(static_cast<unsigned>(lanes_), x);
  }

  /// This chunk's part of the workspace: n vectors of real parts, n of
  /// imaginary parts, a spare slot (MemoryPlanner.h: spectrumWorkspace).
  llvm::Value *workspace(llvm::Value *chunk) const {
    llvm::Value *base = ctx_.workspace(ctx_.schedule.kernelOf[static_cast<size_t>(self_)]);
    return at(base, b_.CreateMul(chunk, c(spectrumWorkspace(n_))));
  }

  /// A constant array of this transform size (EmitContext.h).
  llvm::Value *table(const std::string &name, llvm::Type *type,
                     const std::function<double(int64_t)> &value, int64_t count) const {
    return constantArray(*ctx_.fn->getParent(), fmt::format("netc.fft{}.{}", n_, name), type,
                         value, count);
  }

  /// The block's windowed frames as complex signals of m = n / 2 samples
  /// (even samples real, odd imaginary), in bit-reversed order.
  void load(llvm::Value *first, llvm::Value *re, llvm::Value *im) {
    SpectrogramSpec spec;
    spec.nFft = n_;
    spec.winLength = win_;
    std::vector<double> w = hannWindow(spec);
    llvm::Value *window = table(
        fmt::format("hann{}", win_), ctx_.fp(),
        [&](int64_t k) { return w[static_cast<size_t>(k)]; }, n_);
    int64_t m = n_ / 2;
    int bits = std::countr_zero(static_cast<uint64_t>(m));
    llvm::Value *reversed = table(
        "bitrev", b_.getInt32Ty(),
        [&](int64_t k) {
          int64_t r = 0;
          for (int i = 0; i < bits; ++i)
            r |= ((k >> i) & 1) << (bits - 1 - i);
          return static_cast<double>(r);
        },
        m);
    // Each lane's frame, the last one for lanes past the end.
    llvm::Value *in = ctx_.pointer(node_.inputs[0]);
    llvm::Value *last = b_.CreateSub(rows_, c(1));
    std::vector<llvm::Value *> frames;
    for (int64_t l = 0; l < lanes_; ++l) {
      llvm::Value *row = b_.CreateAdd(first, c(l));
      row = b_.CreateSelect(b_.CreateICmpULT(row, rows_), row, last);
      frames.push_back(at(in, b_.CreateMul(row, c(n_))));
    }
    ctx_.loop(
        c(m),
        [&](llvm::Value *k) {
          llvm::Value *slot = b_.CreateZExt(
              b_.CreateLoad(b_.getInt32Ty(), b_.CreateInBoundsGEP(b_.getInt32Ty(), reversed, k)),
              ctx_.i64());
          for (int64_t part = 0; part < 2; ++part) {
            llvm::Value *sample = b_.CreateAdd(b_.CreateMul(k, c(2)), c(part));
            llvm::Value *wk = splat(b_.CreateLoad(ctx_.fp(), at(window, sample)));
            llvm::Value *v = llvm::PoisonValue::get(vec_);
            for (int64_t l = 0; l < lanes_; ++l)
              v = b_.CreateInsertElement(
                  v, b_.CreateLoad(ctx_.fp(), at(frames[static_cast<size_t>(l)], sample)),
                  static_cast<uint64_t>(l));
            storeVec(part ? im : re, slot, b_.CreateFMul(v, wk));
          }
        },
        "k");
  }

  /// cos or sin of 2 pi j / n, j = 0 .. n / 2.
  llvm::Value *twiddles(bool sine) const {
    return table(
        sine ? "sin" : "cos", ctx_.fp(),
        [&](int64_t j) {
          double angle = 2 * kPi * static_cast<double>(j) / static_cast<double>(n_);
          return sine ? std::sin(angle) : std::cos(angle);
        },
        n_ / 2 + 1);
  }

  /// In-place radix-2 decimation-in-time butterflies of the m-point
  /// transform, stage by stage.
  void transform(llvm::Value *re, llvm::Value *im) {
    llvm::Value *cosines = twiddles(false), *sines = twiddles(true);
    int64_t m = n_ / 2;
    for (int64_t half = 1; half < m; half *= 2) {
      // w^k = exp(-2 pi i k / span) = exp(-2 pi i (k n / span) / n)
      int64_t span = 2 * half, step = n_ / span;
      ctx_.loop(
          c(m / span),
          [&](llvm::Value *group) {
            llvm::Value *base = b_.CreateMul(group, c(span));
            ctx_.loop(
                c(half),
                [&](llvm::Value *k) {
                  // w = exp(-2 pi i k / span) = cos - i sin
                  llvm::Value *t = b_.CreateMul(k, c(step));
                  llvm::Value *wc = splat(b_.CreateLoad(ctx_.fp(), at(cosines, t)));
                  llvm::Value *ws = splat(b_.CreateLoad(ctx_.fp(), at(sines, t)));
                  llvm::Value *a = b_.CreateAdd(base, k), *bb = b_.CreateAdd(a, c(half));
                  llvm::Value *ar = loadVec(re, a), *ai = loadVec(im, a);
                  llvm::Value *br = loadVec(re, bb), *bi = loadVec(im, bb);
                  // (wc - i ws)(br + i bi) = (wc br + ws bi) + i (wc bi - ws br)
                  llvm::Value *tr = b_.CreateFAdd(b_.CreateFMul(wc, br), b_.CreateFMul(ws, bi));
                  llvm::Value *ti = b_.CreateFSub(b_.CreateFMul(wc, bi), b_.CreateFMul(ws, br));
                  storeVec(re, a, b_.CreateFAdd(ar, tr));
                  storeVec(im, a, b_.CreateFAdd(ai, ti));
                  storeVec(re, bb, b_.CreateFSub(ar, tr));
                  storeVec(im, bb, b_.CreateFSub(ai, ti));
                },
                "k");
          },
          "group");
    }
  }

  /// Each frame's power at the one-sided frequencies, stored lane by lane
  /// (lanes past the end into the workspace's spare slot).
  void power(llvm::Value *first, llvm::Value *re, llvm::Value *im) {
    llvm::Value *out = ctx_.pointer(self_);
    llvm::Value *spare = at(im, c(n_ * lanes_)); // past both halves
    llvm::Value *halfC = splat(llvm::ConstantFP::get(ctx_.fp(), 0.5));
    llvm::Value *cosines = twiddles(false), *sines = twiddles(true);
    int64_t m = n_ / 2;
    // Each lane's row of the output and the step between its frequencies:
    // the spare slot and 0 for lanes past the end.
    std::vector<std::pair<llvm::Value *, llvm::Value *>> rowsOut;
    for (int64_t l = 0; l < lanes_; ++l) {
      llvm::Value *row = b_.CreateAdd(first, c(l));
      llvm::Value *inside = b_.CreateICmpULT(row, rows_);
      rowsOut.push_back({b_.CreateSelect(inside, at(out, b_.CreateMul(row, c(bins_))), spare),
                         b_.CreateZExt(inside, ctx_.i64())});
    }
    ctx_.loop(
        c(bins_),
        [&](llvm::Value *f) {
          llvm::Value *p = b_.CreateAnd(f, c(m - 1));                     // f mod m
          llvm::Value *q = b_.CreateAnd(b_.CreateSub(c(m), f), c(m - 1)); // (m - f) mod m
          llvm::Value *zr = loadVec(re, p), *zi = loadVec(im, p);
          llvm::Value *yr = loadVec(re, q), *yi = loadVec(im, q);
          llvm::Value *er = b_.CreateFMul(halfC, b_.CreateFAdd(zr, yr));
          llvm::Value *ei = b_.CreateFMul(halfC, b_.CreateFSub(zi, yi));
          llvm::Value *orr = b_.CreateFMul(halfC, b_.CreateFAdd(zi, yi));
          llvm::Value *oi = b_.CreateFMul(halfC, b_.CreateFSub(yr, zr));
          // X = E + (wc - i ws) O
          llvm::Value *wc = splat(b_.CreateLoad(ctx_.fp(), at(cosines, f)));
          llvm::Value *ws = splat(b_.CreateLoad(ctx_.fp(), at(sines, f)));
          llvm::Value *xr =
              b_.CreateFAdd(er, b_.CreateFAdd(b_.CreateFMul(wc, orr), b_.CreateFMul(ws, oi)));
          llvm::Value *xi =
              b_.CreateFAdd(ei, b_.CreateFSub(b_.CreateFMul(wc, oi), b_.CreateFMul(ws, orr)));
          llvm::Value *pw = b_.CreateFAdd(b_.CreateFMul(xr, xr), b_.CreateFMul(xi, xi));
          for (int64_t l = 0; l < lanes_; ++l) {
            auto [rowBase, step] = rowsOut[static_cast<size_t>(l)];
            b_.CreateStore(b_.CreateExtractElement(pw, static_cast<uint64_t>(l)),
                           at(rowBase, b_.CreateMul(f, step)));
          }
        },
        "f");
  }

  const EmitContext &ctx_;
  llvm::IRBuilder<> &b_;
  ValueId self_;
  const Node &node_;
  int64_t n_ = 0, win_ = 0, bins_ = 0, lanes_ = 1;
  llvm::FixedVectorType *vec_ = nullptr;
  llvm::Value *rows_ = nullptr;
};

} // namespace

llvm::Value *spectrumChunkCount(const EmitContext &ctx, const Kernel &kernel) {
  SpectrumEmitter e(ctx, kernel);
  const Node &n = ctx.graph.node(kernel.nodes.front());
  // One chunk per ~16K samples transformed, in whole blocks.
  llvm::Value *byWork =
      ctx.b.CreateLShr(ctx.b.CreateMul(e.rows(), ctx.i64(n.attrs.window[0])), ctx.i64(14));
  return ctx.chunkCount(byWork, ctx.chunkUnits(e.rows(), e.block()));
}

void emitSpectrumChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                       llvm::Value *chunks) {
  SpectrumEmitter(ctx, kernel).emit(chunk, chunks);
}

} // namespace netc
