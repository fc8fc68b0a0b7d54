// MatMulKernel.cpp - C = op(A) · op(B), register-tiled and vectorized.
//
// Two register-tiled schemes, picked by layout, both accumulating a whole
// tile of C in SIMD registers over the full depth K and storing it once:
//
// 1. Broadcast (op(B) row-major: B, not Bᵀ). A tile is MR rows × NV vectors
//    of C. Per k: load NV vectors of B's row k, broadcast MR scalars of
//    op(A) (any layout: a row of A or, transposed, a contiguous run of A's
//    row k), MR·NV fused multiply-adds. Column blocks are the outer loop, so
//    the B panel they read stays in cache while the row blocks go by.
// 2. Dot (op(B) = Bᵀ, A not transposed: a linear layer's forward pass). K is
//    contiguous in both operands, so a tile is MR rows × NR columns of dot
//    products, each accumulated as a vector along K and reduced at the end.
//
// Edges: a loop over full tiles is followed by loops over smaller tiles
// (each runs at most a few times); a partial vector uses masked loads and
// stores. The rare Aᵀ·Bᵀ stays a scalar loop nest.
//
// Every output element is a sum over the full K in a fixed order that
// depends only on the shapes, so splitting the outer loop into chunks
// (threads) cannot change a result bit.
#include "compiler/codegen/Kernels.h"

#include <llvm/IR/Intrinsics.h>

#include <vector>

namespace netc {

namespace {

using Values = std::vector<llvm::Value *>;

class GemmEmitter {
public:
  GemmEmitter(const EmitContext &ctx, const Kernel &kernel)
      : ctx_(ctx), b_(ctx.b), c_(kernel.nodes.front()), n_(ctx.graph.node(c_)) {
    a_ = n_.inputs[0];
    bm_ = n_.inputs[1];
    const Shape &as = ctx.graph.shape(a_), &bs = ctx.graph.shape(bm_);
    rows_ = ctx.extent(n_.shape.dims[0]);
    cols_ = ctx.extent(n_.shape.dims[1]);
    depth_ = ctx.extent(n_.attrs.transA ? as.dims[0] : as.dims[1]);
    lda_ = ctx.extent(as.dims[1]);
    ldb_ = ctx.extent(bs.dims[1]);
    unsigned elemBytes = ctx.fp()->getPrimitiveSizeInBits() / 8;
    lanes_ = ctx.vectorBytes / elemBytes;
    vec_ = llvm::FixedVectorType::get(ctx.fp(), lanes_);
  }

  /// The outer dimension split into chunks: C's columns for the broadcast
  /// scheme, its rows otherwise.
  llvm::Value *outerExtent() const { return broadcastScheme() ? cols_ : rows_; }

  /// How many chunks: one per ~2 MFLOP of work, at most 16, and no chunk
  /// smaller than one tile. Depends on the shapes and N only.
  llvm::Value *chunkCount() {
    llvm::Value *blocks = b_.CreateUDiv(b_.CreateAdd(outerExtent(), ctx_.i64(granule() - 1)),
                                        ctx_.i64(granule()));
    llvm::Value *flops = b_.CreateMul(b_.CreateMul(rows_, cols_), b_.CreateMul(depth_, ctx_.i64(2)));
    llvm::Value *byWork = b_.CreateLShr(flops, ctx_.i64(21));
    llvm::Value *count = umin(umin(blocks, byWork), ctx_.i64(16));
    return b_.CreateBinaryIntrinsic(llvm::Intrinsic::umax, count, ctx_.i64(1));
  }

  /// Chunk `chunk` of `chunks`: whole tiles [c·B/C, (c+1)·B/C) of the B
  /// blocks of the outer dimension.
  void emitChunk(llvm::Value *chunk, llvm::Value *chunks) {
    llvm::Value *extent = outerExtent();
    llvm::Value *g = ctx_.i64(granule());
    llvm::Value *blocks = b_.CreateUDiv(b_.CreateAdd(extent, ctx_.i64(granule() - 1)), g);
    auto edge = [&](llvm::Value *c) {
      llvm::Value *block = b_.CreateUDiv(b_.CreateMul(c, blocks), chunks);
      return umin(b_.CreateMul(block, g), extent);
    };
    emit(edge(chunk), edge(b_.CreateAdd(chunk, ctx_.i64(1))));
  }

  /// Computes the part of C whose outer index lies in [lo, hi).
  void emit(llvm::Value *lo, llvm::Value *hi) {
    if (broadcastScheme())
      return emitBroadcast(lo, hi);
    if (!n_.attrs.transA)
      return emitDot(lo, hi);
    emitScalar(lo, hi);
  }

private:
  bool broadcastScheme() const { return !n_.attrs.transB; }
  bool wide() const { return ctx_.vectorRegisters == 32; }
  /// Accumulators the register file holds beside the operands.
  int64_t accumulatorBudget() const { return wide() ? 24 : 12; }
  // Broadcast tiles: MR rows x 3 vectors; dot tiles: MR x NR dot products.
  int64_t broadcastRows() const { return accumulatorBudget() / 3; }
  static constexpr int64_t kBroadcastVectors = 3;
  std::vector<int64_t> dotRows() const { return wide() ? std::vector<int64_t>{4, 2, 1} : std::vector<int64_t>{3, 2, 1}; }
  std::vector<int64_t> dotCols() const { return wide() ? std::vector<int64_t>{6, 4, 2, 1} : std::vector<int64_t>{4, 2, 1}; }
  /// The outer dimension's tile: chunks start at multiples of it.
  int64_t granule() const {
    if (broadcastScheme())
      return kBroadcastVectors * lanes_;
    return n_.attrs.transA ? 1 : dotRows().front();
  }
  llvm::Value *umin(llvm::Value *x, llvm::Value *y) {
    return b_.CreateBinaryIntrinsic(llvm::Intrinsic::umin, x, y);
  }

  // ---- loops -------------------------------------------------------------

  /// for (i = from; i + step <= to; i += step) body(i); returns i after it.
  llvm::Value *stepLoop(llvm::Value *from, llvm::Value *to, int64_t step,
                        const std::function<void(llvm::Value *)> &body, const char *name) {
    llvm::LLVMContext &c = b_.getContext();
    llvm::Value *stepV = ctx_.i64(step);
    llvm::BasicBlock *pre = b_.GetInsertBlock();
    auto *header = llvm::BasicBlock::Create(c, std::string(name) + ".loop", ctx_.fn);
    auto *exit = llvm::BasicBlock::Create(c, std::string(name) + ".exit", ctx_.fn);
    b_.CreateCondBr(b_.CreateICmpSLE(b_.CreateAdd(from, stepV), to), header, exit);
    b_.SetInsertPoint(header);
    llvm::PHINode *iv = b_.CreatePHI(ctx_.i64(), 2, name);
    iv->addIncoming(from, pre);
    body(iv);
    llvm::Value *next = b_.CreateAdd(iv, stepV, "", true, true);
    llvm::BasicBlock *latch = b_.GetInsertBlock();
    iv->addIncoming(next, latch);
    b_.CreateCondBr(b_.CreateICmpSLE(b_.CreateAdd(next, stepV), to), header, exit);
    b_.SetInsertPoint(exit);
    llvm::PHINode *end = b_.CreatePHI(ctx_.i64(), 2, std::string(name) + ".end");
    end->addIncoming(from, pre);
    end->addIncoming(next, latch);
    return end;
  }

  /// Blocks of `sizes[0]` from `from` to `to`, then of each smaller size for
  /// what is left; body(start, size).
  void tiled(llvm::Value *from, llvm::Value *to, const std::vector<int64_t> &sizes,
             const std::function<void(llvm::Value *, int64_t)> &body, const char *name) {
    llvm::Value *at = from;
    for (int64_t size : sizes)
      at = stepLoop(at, to, size, [&](llvm::Value *i) { body(i, size); }, name);
  }

  /// A loop over k in [0, count) step `step` carrying `init`; body returns
  /// the next values. Returns the values after the loop.
  Values carriedLoop(llvm::Value *count, int64_t step, const Values &init,
                     const std::function<Values(llvm::Value *, const Values &)> &body) {
    llvm::LLVMContext &c = b_.getContext();
    llvm::Value *stepV = ctx_.i64(step);
    llvm::BasicBlock *pre = b_.GetInsertBlock();
    auto *header = llvm::BasicBlock::Create(c, "k.loop", ctx_.fn);
    auto *exit = llvm::BasicBlock::Create(c, "k.exit", ctx_.fn);
    b_.CreateCondBr(b_.CreateICmpSLE(stepV, count), header, exit);
    b_.SetInsertPoint(header);
    llvm::PHINode *k = b_.CreatePHI(ctx_.i64(), 2, "k");
    k->addIncoming(ctx_.i64(0), pre);
    Values current;
    for (llvm::Value *v : init) {
      llvm::PHINode *phi = b_.CreatePHI(v->getType(), 2, "acc");
      phi->addIncoming(v, pre);
      current.push_back(phi);
    }
    Values next = body(k, current);
    llvm::Value *kNext = b_.CreateAdd(k, stepV, "", true, true);
    llvm::BasicBlock *latch = b_.GetInsertBlock();
    k->addIncoming(kNext, latch);
    for (size_t i = 0; i < next.size(); ++i)
      llvm::cast<llvm::PHINode>(current[i])->addIncoming(next[i], latch);
    b_.CreateCondBr(b_.CreateICmpSLE(b_.CreateAdd(kNext, stepV), count), header, exit);
    b_.SetInsertPoint(exit);
    Values out;
    for (size_t i = 0; i < init.size(); ++i) {
      llvm::PHINode *phi = b_.CreatePHI(init[i]->getType(), 2, "acc.out");
      phi->addIncoming(init[i], pre);
      phi->addIncoming(next[i], latch);
      out.push_back(phi);
    }
    return out;
  }

  // ---- memory ------------------------------------------------------------

  llvm::Value *address(ValueId v, llvm::Value *index) {
    return b_.CreateInBoundsGEP(ctx_.fp(), ctx_.pointer(v), index);
  }
  llvm::Align elemAlign() const {
    return llvm::Align(ctx_.fp()->getPrimitiveSizeInBits() / 8);
  }
  /// Lanes [0, count) on, the rest off.
  llvm::Value *laneMask(llvm::Value *count) {
    llvm::SmallVector<llvm::Constant *, 16> lanes;
    for (unsigned i = 0; i < lanes_; ++i)
      lanes.push_back(b_.getInt64(i));
    return b_.CreateICmpULT(llvm::ConstantVector::get(lanes),
                            b_.CreateVectorSplat(lanes_, count));
  }
  llvm::Value *loadVector(ValueId v, llvm::Value *index, llvm::Value *mask) {
    llvm::Value *at = address(v, index);
    if (!mask)
      return b_.CreateAlignedLoad(vec_, at, elemAlign());
    return b_.CreateMaskedLoad(vec_, at, elemAlign(), mask, llvm::Constant::getNullValue(vec_));
  }
  void storeVector(ValueId v, llvm::Value *index, llvm::Value *value, llvm::Value *mask) {
    llvm::Value *at = address(v, index);
    if (!mask) {
      b_.CreateAlignedStore(value, at, elemAlign());
      return;
    }
    b_.CreateMaskedStore(value, at, elemAlign(), mask);
  }
  llvm::Value *fma(llvm::Value *x, llvm::Value *y, llvm::Value *acc) {
    return b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {x->getType()}, {x, y, acc});
  }
  llvm::Value *zeroVector() { return llvm::Constant::getNullValue(vec_); }

  /// Element (row, k) of op(A).
  llvm::Value *indexA(llvm::Value *row, llvm::Value *k) {
    return n_.attrs.transA ? b_.CreateAdd(b_.CreateMul(k, lda_), row)
                           : b_.CreateAdd(b_.CreateMul(row, lda_), k);
  }
  llvm::Value *offset(llvm::Value *base, int64_t delta) {
    return delta == 0 ? base : b_.CreateAdd(base, ctx_.i64(delta));
  }

  // ---- 1. broadcast scheme -------------------------------------------------

  void emitBroadcast(llvm::Value *lo, llvm::Value *hi) {
    // 24 accumulators: 8 rows x 3 vectors; 12: 4 x 3.
    int64_t mr = broadcastRows(), nv = kBroadcastVectors;
    std::vector<int64_t> rowSizes;
    for (int64_t s = mr; s >= 1; s /= 2)
      rowSizes.push_back(s);
    auto columnBlock = [&](llvm::Value *j, int64_t vectors, llvm::Value *mask) {
      tiled(ctx_.i64(0), rows_, rowSizes, [&](llvm::Value *i, int64_t rows) {
        broadcastTile(i, rows, j, vectors, mask);
      }, "i");
    };
    int64_t width = nv * lanes_;
    llvm::Value *j = stepLoop(lo, hi, width, [&](llvm::Value *j0) { columnBlock(j0, nv, nullptr); }, "j");
    j = stepLoop(j, hi, lanes_, [&](llvm::Value *j0) { columnBlock(j0, 1, nullptr); }, "j");
    // The last partial vector, if any.
    llvm::Value *left = b_.CreateSub(hi, j);
    ifThen(b_.CreateICmpSGT(left, ctx_.i64(0)), [&] { columnBlock(j, 1, laneMask(left)); });
  }

  void broadcastTile(llvm::Value *i0, int64_t rows, llvm::Value *j0, int64_t vectors,
                     llvm::Value *mask) {
    Values init(static_cast<size_t>(rows * vectors), zeroVector());
    Values acc = carriedLoop(depth_, 1, init, [&](llvm::Value *k, const Values &in) {
      // Live: the accumulators, the row of B, one broadcast.
      Values out = in, bv;
      llvm::Value *bRow = b_.CreateMul(k, ldb_);
      for (int64_t v = 0; v < vectors; ++v)
        bv.push_back(loadVector(bm_, b_.CreateAdd(bRow, offset(j0, v * lanes_)), mask));
      for (int64_t r = 0; r < rows; ++r) {
        llvm::Value *a = b_.CreateLoad(ctx_.fp(), address(a_, indexA(offset(i0, r), k)));
        llvm::Value *splat = b_.CreateVectorSplat(lanes_, a);
        for (int64_t v = 0; v < vectors; ++v) {
          size_t at = static_cast<size_t>(r * vectors + v);
          out[at] = fma(splat, bv[static_cast<size_t>(v)], out[at]);
        }
      }
      return out;
    });
    for (int64_t r = 0; r < rows; ++r) {
      llvm::Value *cRow = b_.CreateMul(offset(i0, r), cols_);
      for (int64_t v = 0; v < vectors; ++v)
        storeVector(c_, b_.CreateAdd(cRow, offset(j0, v * lanes_)),
                    acc[static_cast<size_t>(r * vectors + v)], mask);
    }
  }

  // ---- 2. dot scheme -------------------------------------------------------

  void emitDot(llvm::Value *lo, llvm::Value *hi) {
    // 24 accumulators: 4 rows x 6 columns; 12: 3 x 4.
    tiled(lo, hi, dotRows(), [&](llvm::Value *i, int64_t rows) {
      tiled(ctx_.i64(0), cols_, dotCols(), [&](llvm::Value *j, int64_t cols) {
        dotTile(i, rows, j, cols);
      }, "j");
    }, "i");
  }

  void dotTile(llvm::Value *i0, int64_t rows, llvm::Value *j0, int64_t cols) {
    llvm::Value *aBase[8], *bBase[8];
    for (int64_t r = 0; r < rows; ++r)
      aBase[r] = b_.CreateMul(offset(i0, r), lda_);
    for (int64_t s = 0; s < cols; ++s)
      bBase[s] = b_.CreateMul(offset(j0, s), ldb_);
    auto step = [&](llvm::Value *k, const Values &in, llvm::Value *mask) {
      Values out = in;
      Values av;
      for (int64_t r = 0; r < rows; ++r)
        av.push_back(loadVector(a_, b_.CreateAdd(aBase[r], k), mask));
      for (int64_t s = 0; s < cols; ++s) {
        llvm::Value *bv = loadVector(bm_, b_.CreateAdd(bBase[s], k), mask);
        for (int64_t r = 0; r < rows; ++r) {
          size_t at = static_cast<size_t>(r * cols + s);
          out[at] = fma(av[static_cast<size_t>(r)], bv, out[at]);
        }
      }
      return out;
    };
    Values init(static_cast<size_t>(rows * cols), zeroVector());
    Values acc = carriedLoop(depth_, lanes_, init, [&](llvm::Value *k, const Values &in) {
      return step(k, in, nullptr);
    });
    // The partial vector at the end of K: masked lanes load as zero.
    llvm::Value *kTail = b_.CreateAnd(depth_, ctx_.i64(~static_cast<int64_t>(lanes_ - 1)));
    llvm::Value *left = b_.CreateSub(depth_, kTail);
    bool constantDepth = llvm::isa<llvm::ConstantInt>(depth_);
    if (!constantDepth || llvm::cast<llvm::ConstantInt>(left)->getSExtValue() != 0)
      acc = step(kTail, acc, laneMask(left));
    for (int64_t r = 0; r < rows; ++r) {
      llvm::Value *cRow = b_.CreateMul(offset(i0, r), cols_);
      for (int64_t s = 0; s < cols; ++s) {
        auto *sum = b_.CreateFAddReduce(llvm::ConstantFP::getNegativeZero(ctx_.fp()),
                                        acc[static_cast<size_t>(r * cols + s)]);
        llvm::cast<llvm::Instruction>(sum)->setHasAllowReassoc(true);
        b_.CreateStore(sum, address(c_, b_.CreateAdd(cRow, offset(j0, s))));
      }
    }
  }

  // ---- 3. Aᵀ·Bᵀ: scalar ----------------------------------------------------

  void emitScalar(llvm::Value *lo, llvm::Value *hi) {
    stepLoop(lo, hi, 1, [&](llvm::Value *i) {
      ctx_.loop(cols_, [&](llvm::Value *j) {
        Values acc = carriedLoop(depth_, 1, {llvm::ConstantFP::get(ctx_.fp(), 0.0)},
                                 [&](llvm::Value *k, const Values &in) -> Values {
          llvm::Value *a = b_.CreateLoad(ctx_.fp(), address(a_, indexA(i, k)));
          llvm::Value *bv = b_.CreateLoad(
              ctx_.fp(), address(bm_, b_.CreateAdd(b_.CreateMul(j, ldb_), k)));
          return {fma(a, bv, in[0])};
        });
        b_.CreateStore(acc[0], address(c_, b_.CreateAdd(b_.CreateMul(i, cols_), j)));
      }, "j");
    }, "i");
  }

  void ifThen(llvm::Value *cond, const std::function<void()> &body) {
    llvm::LLVMContext &c = b_.getContext();
    auto *then = llvm::BasicBlock::Create(c, "tail", ctx_.fn);
    auto *done = llvm::BasicBlock::Create(c, "tail.done", ctx_.fn);
    b_.CreateCondBr(cond, then, done);
    b_.SetInsertPoint(then);
    body();
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
  }

  const EmitContext &ctx_;
  llvm::IRBuilder<> &b_;
  ValueId c_;
  const Node &n_;
  ValueId a_ = kNoValue, bm_ = kNoValue;
  llvm::Value *rows_, *cols_, *depth_, *lda_, *ldb_;
  unsigned lanes_ = 1;
  llvm::FixedVectorType *vec_;
};

} // namespace

void emitMatMulKernel(const EmitContext &ctx, const Kernel &kernel) {
  GemmEmitter gemm(ctx, kernel);
  gemm.emit(ctx.i64(0), gemm.outerExtent());
}

llvm::Value *matMulChunkCount(const EmitContext &ctx, const Kernel &kernel) {
  return GemmEmitter(ctx, kernel).chunkCount();
}

void emitMatMulChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                     llvm::Value *chunks) {
  GemmEmitter(ctx, kernel).emitChunk(chunk, chunks);
}

} // namespace netc
