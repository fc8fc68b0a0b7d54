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
//    With AVX-512, a batch's forward product through a wide weight packs
//    the weight's rows into panels for the broadcast scheme instead (2b).
//
// Edges: a loop over full tiles is followed by loops over smaller tiles
// (each runs at most a few times); a partial vector uses masked loads and
// stores. The rare Aᵀ·Bᵀ stays a scalar loop nest.
//
// Each scheme is one function per element type, shared by every product of
// the module without an epilogue (`netc_gemm.<scheme>.<type>`, shapes as
// arguments): emitting the tiles once per product made compile time grow
// with the model. A product's kernel computes its operands and calls it for
// a range of C's outer dimension, so the chunks the runtime's threads take
// are ranges. A product with an epilogue (Fuse.h) has its tiles inline, the
// epilogue applied to each finished vector or element of C; when it reads a
// weight as Bᵀ (a linear layer forward) or updates one (its gradient with
// the optimizer's step) its chunks are ranges of the weight's rows instead
// (Product), so each thread keeps to its part of the weight.
//
// Every output element is a sum over the full K in a fixed order that
// depends only on the shapes, so splitting the outer loop into chunks
// (threads) cannot change a result bit.
#include "compiler/codegen/Kernels.h"

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace netc {

namespace {

using Values = std::vector<llvm::Value *>;

/// A vector of `type` at base[index] (element-aligned), lanes off in
/// `mask` read as zero; no mask: all lanes.
llvm::Value *loadVector(llvm::IRBuilder<> &b, llvm::FixedVectorType *type, llvm::Value *base,
                        llvm::Value *index, llvm::Value *mask) {
  llvm::Type *elem = type->getElementType();
  llvm::Value *at = b.CreateInBoundsGEP(elem, base, index);
  llvm::Align align(elem->getPrimitiveSizeInBits() / 8);
  if (!mask)
    return b.CreateAlignedLoad(type, at, align);
  return b.CreateMaskedLoad(type, at, align, mask, llvm::Constant::getNullValue(type));
}

/// Stores the vector `value` at base[index], only the lanes on in `mask`.
void storeVector(llvm::IRBuilder<> &b, llvm::Value *base, llvm::Value *index, llvm::Value *value,
                 llvm::Value *mask) {
  llvm::Type *elem = llvm::cast<llvm::FixedVectorType>(value->getType())->getElementType();
  llvm::Value *at = b.CreateInBoundsGEP(elem, base, index);
  llvm::Align align(elem->getPrimitiveSizeInBits() / 8);
  if (!mask) {
    b.CreateAlignedStore(value, at, align);
    return;
  }
  b.CreateMaskedStore(value, at, align, mask);
}

enum class Scheme { Broadcast, Dot, Scalar };

/// What a GEMM function is specialised on: scheme, layout of A, element
/// type and the target's SIMD width and register count.
struct GemmKind {
  Scheme scheme = Scheme::Broadcast;
  bool transA = false;
  llvm::Type *fp = nullptr;
  unsigned lanes = 1;
  bool wide = false; ///< 32 SIMD registers

  bool accumulate = false; ///< C += op(A) · op(B)
  bool tableA = false, tableB = false; ///< rows at offsets from a table
  bool grid = false;                   ///< C's columns on a grid
  bool depthGrid = false;              ///< the depth on a grid (broadcast)
  int64_t aRun = 1;                    ///< GemmCall::aRun
  /// Broadcast layout with fewer rows than a tile (a convolution's few
  /// channels), always this many: one row tile of them, wider.
  int64_t fewRows = 0;

  GemmKind(const EmitContext &ctx, bool ta, bool tb, bool acc = false)
      : transA(ta), fp(ctx.fp()), accumulate(acc) {
    scheme = !tb ? Scheme::Broadcast : !transA ? Scheme::Dot : Scheme::Scalar;
    lanes = ctx.vectorBytes / (fp->getPrimitiveSizeInBits() / 8);
    wide = ctx.vectorRegisters == 32;
  }
  GemmKind(const EmitContext &ctx, const Node &n) : GemmKind(ctx, n.attrs.transA, n.attrs.transB) {}
  GemmKind(const EmitContext &ctx, const GemmCall &g)
      : GemmKind(ctx, g.transA, g.transB, g.accumulate) {
    tableA = g.aRows != nullptr;
    tableB = g.bRows != nullptr;
    grid = g.gridWidth != nullptr;
    depthGrid = g.depthWidth != nullptr;
    aRun = tableA ? g.aRun : 1;
    assert(!depthGrid || scheme == Scheme::Broadcast);
    if (auto *rows = llvm::dyn_cast<llvm::ConstantInt>(g.rows);
        rows && scheme == Scheme::Broadcast && wide && rows->getSExtValue() < broadcastRows())
      fewRows = rows->getSExtValue();
  }

  std::string name() const {
    const char *schemes[] = {"broadcast", "dot", "scalar"};
    std::string n = std::string("netc_gemm.") + schemes[static_cast<int>(scheme)];
    if (scheme == Scheme::Broadcast && transA)
      n += "_ta";
    if (accumulate)
      n += "_acc";
    if (tableA)
      n += "_ra";
    if (tableB)
      n += "_rb";
    if (grid)
      n += "_grid";
    if (depthGrid)
      n += "_kgrid";
    if (aRun > 1)
      n += "_run" + std::to_string(aRun);
    if (fewRows)
      n += "_m" + std::to_string(fewRows);
    return n + (fp->isDoubleTy() ? ".f64" : ".f32");
  }

  // Broadcast tiles: MR rows x 3 vectors (24 or 12 accumulators); dot
  // tiles: MR x NR dot products (4 x 6 or 3 x 4).
  static constexpr int64_t kBroadcastVectors = 3;
  int64_t broadcastRows() const { return wide ? 8 : 4; }
  std::vector<int64_t> dotRows() const {
    return wide ? std::vector<int64_t>{4, 2, 1} : std::vector<int64_t>{3, 2, 1};
  }
  std::vector<int64_t> dotCols() const {
    return wide ? std::vector<int64_t>{6, 4, 2, 1} : std::vector<int64_t>{4, 2, 1};
  }

  /// The dimension the tiles' loops and the chunks split: the columns of
  /// C for the broadcast scheme, else its rows.
  llvm::Value *outer(llvm::Value *rows, llvm::Value *cols) const {
    return scheme == Scheme::Broadcast ? cols : rows;
  }

  /// The outer dimension's tile: chunks start at multiples of it.
  int64_t granule() const {
    switch (scheme) {
    case Scheme::Broadcast:
      return kBroadcastVectors * lanes;
    case Scheme::Dot:
      return dotRows().front();
    case Scheme::Scalar:
      return 1;
    }
    return 1;
  }
};

/// Where a finished value of C goes: (value, row, column, mask); the value
/// is a vector of columns [column, column + lanes) (lanes on in `mask`, all
/// without one) for the broadcast scheme, one element otherwise.
using StoreC = std::function<void(llvm::Value *, llvm::Value *, llvm::Value *, llvm::Value *)>;

/// The tiles of one product, emitted at a builder's insertion point:
/// computes the part of C (rows x cols, row-major) whose outer index — a
/// column for the broadcast scheme, else a row — lies in [lo, hi). Used for
/// the shared GEMM functions
///   void (const T *A, const T *B, T *C, i64 rows, i64 cols, i64 depth,
///         i64 lda, i64 ldb, i64 lo, i64 hi)
/// and inline for a product with an epilogue.
class GemmBody {
public:
  /// The operands (the call's layout flags are the kind's).
  GemmBody(const GemmKind &kind, llvm::Function *fn, llvm::IRBuilder<> &b, const GemmCall &o,
           StoreC store = nullptr)
      : k_(kind), fn_(fn), b_(b), a_(o.a), bm_(o.b), c_(o.c), rows_(o.rows), cols_(o.cols),
        depth_(o.depth), lda_(o.lda), ldb_(o.ldb), aRows_(o.aRows), bRows_(o.bRows),
        gridWidth_(o.gridWidth), gridValid_(o.gridValid), ldc_(o.ldc ? o.ldc : o.cols),
        depthWidth_(o.depthWidth), depthValid_(o.depthValid), store_(std::move(store)) {
    vec_ = llvm::FixedVectorType::get(k_.fp, k_.lanes);
    if (!store_)
      store_ = [this](llvm::Value *value, llvm::Value *row, llvm::Value *col, llvm::Value *mask) {
        llvm::Value *at = b_.CreateAdd(b_.CreateMul(row, ldc_), col);
        llvm::Value *base = c_;
        if (k_.grid) { // lane 0 may lie before C (storeColumns)
          base = b_.CreateGEP(k_.fp, c_, at);
          at = i64(0);
        }
        bool vector = value->getType()->isVectorTy();
        if (k_.accumulate)
          value = b_.CreateFAdd(
              vector ? loadVector(base, at, mask) : b_.CreateLoad(k_.fp, address(base, at)),
              value);
        if (vector)
          storeVector(base, at, value, mask);
        else
          b_.CreateStore(value, address(base, at));
      };
  }

  /// Restricts the other dimension (rows for the broadcast scheme, else
  /// columns) to [lo, hi); all of it by default.
  void innerRange(llvm::Value *lo, llvm::Value *hi) {
    innerLo_ = lo;
    innerHi_ = hi;
  }

  /// The dot scheme packs B's rows into `panel` (kPanelColumns by the
  /// depth rounded up to 16) and multiplies them with the broadcast scheme
  /// when C has at least kPackedRows rows (packedWeightProduct).
  void packInto(llvm::Value *panel) { panel_ = panel; }

  void emit(llvm::Value *lo, llvm::Value *hi) {
    switch (k_.scheme) {
    case Scheme::Broadcast:
      emitBroadcast(lo, hi);
      break;
    case Scheme::Dot:
      if (!panel_) {
        emitDot(lo, hi);
        break;
      }
      emitIfElse(
          b_, fn_, b_.CreateICmpSGE(b_.CreateSub(hi, lo), i64(kPackedRows)),
          [&] { emitPacked(lo, hi); }, [&] { emitDot(lo, hi); });
      break;
    case Scheme::Scalar:
      emitScalar(lo, hi);
      break;
    }
  }

private:
  llvm::Value *i64(int64_t v) { return b_.getInt64(static_cast<uint64_t>(v)); }

  // ---- loops -------------------------------------------------------------

  /// for (i = from; i + step <= to; i += step) body(i); returns i after it.
  llvm::Value *stepLoop(llvm::Value *from, llvm::Value *to, int64_t step,
                        const std::function<void(llvm::Value *)> &body, const char *name) {
    llvm::LLVMContext &c = b_.getContext();
    llvm::Value *stepV = i64(step);
    llvm::BasicBlock *pre = b_.GetInsertBlock();
    auto *header = llvm::BasicBlock::Create(c, std::string(name) + ".loop", fn_);
    auto *exit = llvm::BasicBlock::Create(c, std::string(name) + ".exit", fn_);
    b_.CreateCondBr(b_.CreateICmpSLE(b_.CreateAdd(from, stepV), to), header, exit);
    b_.SetInsertPoint(header);
    llvm::PHINode *iv = b_.CreatePHI(b_.getInt64Ty(), 2, name);
    iv->addIncoming(from, pre);
    body(iv);
    llvm::Value *next = b_.CreateAdd(iv, stepV, "", true, true);
    llvm::BasicBlock *latch = b_.GetInsertBlock();
    iv->addIncoming(next, latch);
    b_.CreateCondBr(b_.CreateICmpSLE(b_.CreateAdd(next, stepV), to), header, exit);
    b_.SetInsertPoint(exit);
    llvm::PHINode *end = b_.CreatePHI(b_.getInt64Ty(), 2, std::string(name) + ".end");
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
      at = stepLoop(
          at, to, size, [&](llvm::Value *i) { body(i, size); }, name);
  }

  /// A loop over k in [0, count) step `step` carrying `init`; body returns
  /// the next values. Returns the values after the loop.
  Values carriedLoop(llvm::Value *count, int64_t step, const Values &init,
                     const std::function<Values(llvm::Value *, const Values &)> &body) {
    llvm::LLVMContext &c = b_.getContext();
    llvm::Value *stepV = i64(step);
    llvm::BasicBlock *pre = b_.GetInsertBlock();
    auto *header = llvm::BasicBlock::Create(c, "k.loop", fn_);
    auto *exit = llvm::BasicBlock::Create(c, "k.exit", fn_);
    b_.CreateCondBr(b_.CreateICmpSLE(stepV, count), header, exit);
    b_.SetInsertPoint(header);
    llvm::PHINode *k = b_.CreatePHI(b_.getInt64Ty(), 2, "k");
    k->addIncoming(i64(0), pre);
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

  /// carriedLoop over the depth: k in [0, depth), or on the depth's grid
  /// row by row over its valid cells.
  Values depthLoop(const Values &init,
                   const std::function<Values(llvm::Value *, const Values &)> &body) {
    if (!k_.depthGrid)
      return carriedLoop(depth_, 1, init, body);
    return carriedLoop(depth_, 1, init, [&](llvm::Value *row, const Values &in) {
      llvm::Value *start = b_.CreateMul(row, depthWidth_);
      return carriedLoop(depthValid_, 1, in, [&](llvm::Value *j, const Values &acc) {
        return body(b_.CreateAdd(start, j), acc);
      });
    });
  }

  /// if (cond) then(); returns then()'s values merged with `otherwise`.
  Values ifThen(llvm::Value *cond, const Values &otherwise, const std::function<Values()> &then) {
    llvm::LLVMContext &c = b_.getContext();
    llvm::BasicBlock *pre = b_.GetInsertBlock();
    auto *thenBlock = llvm::BasicBlock::Create(c, "tail", fn_);
    auto *done = llvm::BasicBlock::Create(c, "tail.done", fn_);
    b_.CreateCondBr(cond, thenBlock, done);
    b_.SetInsertPoint(thenBlock);
    Values values = then();
    llvm::BasicBlock *thenEnd = b_.GetInsertBlock();
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
    Values out;
    for (size_t i = 0; i < otherwise.size(); ++i) {
      llvm::PHINode *phi = b_.CreatePHI(otherwise[i]->getType(), 2);
      phi->addIncoming(otherwise[i], pre);
      phi->addIncoming(values[i], thenEnd);
      out.push_back(phi);
    }
    return out;
  }

  // ---- memory ------------------------------------------------------------

  llvm::Value *address(llvm::Value *base, llvm::Value *index) {
    return b_.CreateInBoundsGEP(k_.fp, base, index);
  }
  /// Offset `index` of a row table (i32).
  llvm::Value *tableAt(llvm::Value *table, llvm::Value *index) {
    llvm::Value *at = b_.CreateInBoundsGEP(b_.getInt32Ty(), table, index);
    return b_.CreateSExt(b_.CreateLoad(b_.getInt32Ty(), at), b_.getInt64Ty());
  }
  /// Lanes [0, count) on, the rest off.
  llvm::Value *laneMask(llvm::Value *count) {
    return b_.CreateICmpULT(laneIndices(), b_.CreateVectorSplat(k_.lanes, count));
  }
  /// <0, 1, ..., lanes - 1> (i64).
  llvm::Constant *laneIndices() {
    llvm::SmallVector<llvm::Constant *, 16> lanes;
    for (unsigned i = 0; i < k_.lanes; ++i)
      lanes.push_back(b_.getInt64(i));
    return llvm::ConstantVector::get(lanes);
  }
  llvm::Value *loadVector(llvm::Value *base, llvm::Value *index, llvm::Value *mask) {
    return netc::loadVector(b_, vec_, base, index, mask);
  }
  void storeVector(llvm::Value *base, llvm::Value *index, llvm::Value *value, llvm::Value *mask) {
    netc::storeVector(b_, base, index, value, mask);
  }
  llvm::Value *fma(llvm::Value *x, llvm::Value *y, llvm::Value *acc) {
    return b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {x->getType()}, {x, y, acc});
  }
  llvm::Value *zeroVector() { return llvm::Constant::getNullValue(vec_); }

  /// Element (row, k) of op(A).
  llvm::Value *indexA(llvm::Value *row, llvm::Value *k) {
    return k_.transA ? b_.CreateAdd(b_.CreateMul(k, lda_), row)
                     : b_.CreateAdd(rowStartA(row), k);
  }
  /// Where row `row` of A (not transposed) starts.
  llvm::Value *rowStartA(llvm::Value *row) {
    return aRows_ ? tableAt(aRows_, row) : b_.CreateMul(row, lda_);
  }
  /// Where row `row` of B as stored starts.
  llvm::Value *rowStartB(llvm::Value *row) {
    return bRows_ ? tableAt(bRows_, row) : b_.CreateMul(row, ldb_);
  }
  llvm::Value *offset(llvm::Value *base, int64_t delta) {
    return delta == 0 ? base : b_.CreateAdd(base, i64(delta));
  }

  // ---- 1. broadcast scheme -------------------------------------------------

  void emitBroadcast(llvm::Value *lo, llvm::Value *hi) {
    // Tiles of 3 vectors by 8 rows (4 with 16 registers), of 2 by 12 (6),
    // of 1 by 24 (12): the accumulators fill the registers. A row of 4
    // vectors is two tiles of 2, not 3 + 1 (a tile of 1 loads a broadcast
    // per multiply-add). With few rows (fewRows), tiles of all of them by
    // up to 6 vectors.
    auto rowSizes = [&](int64_t vectors) {
      if (k_.fewRows)
        return std::vector<int64_t>{k_.fewRows};
      std::vector<int64_t> sizes;
      if (vectors == 1)
        sizes.push_back(k_.broadcastRows() * 3);
      sizes.push_back(vectors == 2 ? k_.broadcastRows() * 3 / 2 : k_.broadcastRows());
      for (int64_t s = k_.broadcastRows() / 2; s >= 1; s /= 2)
        sizes.push_back(s);
      return sizes;
    };
    auto columnBlock = [&](llvm::Value *j, int64_t vectors, llvm::Value *mask) {
      // A tile starts at a run of A's rows (GemmCall::aRun) while it and
      // every size before it are whole runs (tiled: each size once, in order).
      bool runs = k_.aRun > 1 && !innerLo_;
      tiled(
          innerLo_ ? innerLo_ : i64(0), innerHi_ ? innerHi_ : rows_, rowSizes(vectors),
          [&](llvm::Value *i, int64_t rows) {
            runs = runs && rows % k_.aRun == 0;
            broadcastTile(i, rows, j, vectors, mask, runs ? k_.aRun : 1);
          },
          "i");
    };
    // Full blocks of 3 vectors, then one tile for the rest (the last
    // vector partial, its lanes masked): of 1, 2 or 3 vectors, or of 4 as
    // two of 2 (taking back the last block when only 1 would be left).
    int64_t nv =
        k_.fewRows ? std::clamp<int64_t>(24 / k_.fewRows, 1, 6) : GemmKind::kBroadcastVectors;
    llvm::Value *span = b_.CreateSub(hi, lo);
    llvm::Value *full = b_.CreateUDiv(span, i64(k_.lanes));
    llvm::Value *partial = b_.CreateURem(span, i64(k_.lanes));
    llvm::Value *fullLeft = b_.CreateURem(full, i64(nv)); // full vectors after the blocks
    llvm::Value *rest =
        b_.CreateAdd(fullLeft, b_.CreateZExt(b_.CreateICmpNE(partial, i64(0)), b_.getInt64Ty()));
    llvm::Value *borrow =
        k_.fewRows ? b_.getFalse()
                   : b_.CreateAnd(b_.CreateICmpEQ(rest, i64(1)), b_.CreateICmpUGE(full, i64(nv)));
    llvm::Value *tail = b_.CreateSelect(borrow, i64(4), rest);
    // The columns in full blocks: all but the rest's (and the block taken back).
    llvm::Value *blocked =
        b_.CreateSub(span, b_.CreateAdd(partial, b_.CreateMul(fullLeft, i64(k_.lanes))));
    blocked = b_.CreateSelect(borrow, b_.CreateSub(blocked, i64(nv * k_.lanes)), blocked);
    llvm::Value *j = stepLoop(
        lo, b_.CreateAdd(lo, blocked), nv * k_.lanes,
        [&](llvm::Value *j0) { columnBlock(j0, nv, nullptr); }, "j");
    llvm::Value *mask =
        laneMask(b_.CreateSelect(b_.CreateICmpEQ(partial, i64(0)), i64(k_.lanes), partial));
    for (int64_t t = 1; t <= std::max<int64_t>(nv, 4); ++t)
      ifThen(b_.CreateICmpEQ(tail, i64(t)), {}, [&] {
        if (t == 4 && !k_.fewRows) {
          columnBlock(j, 2, nullptr);
          columnBlock(offset(j, 2 * k_.lanes), 2, mask);
        } else {
          columnBlock(j, t, mask);
        }
        return Values{};
      });
  }

  /// Rows [i0, i0 + rows) by `vectors` vectors of columns from j0, the
  /// last vector's lanes on in `mask` (all without one); A's rows in runs
  /// of `run` from i0. One row offset per run: the 12-row tiles of a
  /// convolution's weight gradient kept 12 row pointers and spilled two,
  /// reloaded every step (now 4, the others at displacements).
  void broadcastTile(llvm::Value *i0, int64_t rows, llvm::Value *j0, int64_t vectors,
                     llvm::Value *mask, int64_t run) {
    auto maskOf = [&](int64_t v) { return v == vectors - 1 ? mask : nullptr; };
    Values rowStart; // A's rows, when not transposed
    for (int64_t r = 0; r < rows && !k_.transA; ++r)
      rowStart.push_back(r % run ? offset(rowStart[static_cast<size_t>(r - r % run)], r % run)
                                 : rowStartA(offset(i0, r)));
    Values init(static_cast<size_t>(rows * vectors), zeroVector());
    Values acc = depthLoop(init, [&](llvm::Value *k, const Values &in) {
      // Live: the accumulators, the row of B, one broadcast.
      Values out = in, bv;
      llvm::Value *bRow = rowStartB(k);
      for (int64_t v = 0; v < vectors; ++v)
        bv.push_back(loadVector(bm_, b_.CreateAdd(bRow, offset(j0, v * k_.lanes)), maskOf(v)));
      for (int64_t r = 0; r < rows; ++r) {
        llvm::Value *at = k_.transA ? indexA(offset(i0, r), k)
                                    : b_.CreateAdd(rowStart[static_cast<size_t>(r)], k);
        llvm::Value *a = b_.CreateLoad(k_.fp, address(a_, at));
        llvm::Value *splat = b_.CreateVectorSplat(k_.lanes, a);
        for (int64_t v = 0; v < vectors; ++v) {
          size_t at = static_cast<size_t>(r * vectors + v);
          out[at] = fma(splat, bv[static_cast<size_t>(v)], out[at]);
        }
      }
      return out;
    });
    for (int64_t v = 0; v < vectors; ++v)
      storeColumns(offset(j0, v * k_.lanes), maskOf(v), [&](llvm::Value *col, llvm::Value *lanes) {
        for (int64_t r = 0; r < rows; ++r)
          store_(acc[static_cast<size_t>(r * vectors + v)], offset(i0, r), col, lanes);
      });
  }

  /// Stores a vector of C's columns [col, col + lanes) (lanes on in
  /// `mask`): store(col, mask) once, or on a grid once per grid row the
  /// lanes reach, with the column its lane 0 would have in C (may lie before
  /// the row: only the row's valid lanes are on).
  void storeColumns(llvm::Value *col, llvm::Value *mask,
                    const std::function<void(llvm::Value *, llvm::Value *)> &store) {
    if (!k_.grid) {
      store(col, mask);
      return;
    }
    llvm::Value *at = b_.CreateAdd(b_.CreateVectorSplat(k_.lanes, col), laneIndices()); // lanes' q
    llvm::Value *first = b_.CreateUDiv(col, gridWidth_);
    llvm::Value *last = b_.CreateUDiv(offset(col, k_.lanes - 1), gridWidth_);
    llvm::Value *count = b_.CreateAdd(b_.CreateSub(last, first), i64(1));
    llvm::Value *gap = b_.CreateSub(gridWidth_, gridValid_);
    stepLoop(
        i64(0), count, 1,
        [&](llvm::Value *i) {
          llvm::Value *line = b_.CreateAdd(first, i);
          llvm::Value *start = b_.CreateMul(line, gridWidth_);
          llvm::Value *on =
              b_.CreateAnd(b_.CreateICmpUGE(at, b_.CreateVectorSplat(k_.lanes, start)),
                           b_.CreateICmpULT(at, b_.CreateVectorSplat(
                                                    k_.lanes, b_.CreateAdd(start, gridValid_))));
          if (mask)
            on = b_.CreateAnd(on, mask);
          store(b_.CreateSub(col, b_.CreateMul(line, gap)), on);
        },
        "line");
  }

  // ---- 2. dot scheme -------------------------------------------------------

  // Cache blocking: the rows of B a block of C's columns reads (~256 KB,
  // a whole number of tiles) stay in L2 while every row tile of A passes;
  // without it a B bigger than L2 was read from memory once per row tile
  // (61% of peak for 2048 x 2048 weights, 72% with).
  void emitDot(llvm::Value *lo, llvm::Value *hi) {
    int64_t tile = k_.dotCols().front();
    llvm::Value *rowBytes = b_.CreateMul(depth_, i64(k_.fp->getPrimitiveSizeInBits() / 8));
    llvm::Value *fit = b_.CreateUDiv(
        i64(256 * 1024), b_.CreateBinaryIntrinsic(llvm::Intrinsic::umax, rowBytes, i64(1)));
    llvm::Value *block = b_.CreateMul(b_.CreateUDiv(fit, i64(tile)), i64(tile));
    block = b_.CreateBinaryIntrinsic(llvm::Intrinsic::umax, block, i64(tile));
    // A B that fits in L2 (1 MB) is one block: with constant shapes the
    // loops then fold to the unblocked ones (and compile as fast).
    llvm::Value *fits = b_.CreateICmpULE(b_.CreateMul(cols_, rowBytes), i64(1 << 20));
    block = b_.CreateSelect(fits, b_.CreateBinaryIntrinsic(llvm::Intrinsic::umax, cols_, i64(1)),
                            block);
    blockLoop(innerLo_ ? innerLo_ : i64(0), innerHi_ ? innerHi_ : cols_, block,
              [&](llvm::Value *j0, llvm::Value *j1) {
                tiled(
                    lo, hi, k_.dotRows(),
                    [&](llvm::Value *i, int64_t rows) {
                      tiled(
                          j0, j1, k_.dotCols(),
                          [&](llvm::Value *j, int64_t cols) { dotTile(i, rows, j, cols); }, "j");
                    },
                    "i");
              });
  }

  /// for (j0 = from; j0 < extent; j0 += block) body(j0, min(j0 + block, extent))
  void blockLoop(llvm::Value *from, llvm::Value *extent, llvm::Value *block,
                 const std::function<void(llvm::Value *, llvm::Value *)> &body) {
    llvm::LLVMContext &c = b_.getContext();
    llvm::BasicBlock *pre = b_.GetInsertBlock();
    auto *header = llvm::BasicBlock::Create(c, "jb.loop", fn_);
    auto *exit = llvm::BasicBlock::Create(c, "jb.exit", fn_);
    b_.CreateCondBr(b_.CreateICmpSGT(extent, from), header, exit);
    b_.SetInsertPoint(header);
    llvm::PHINode *j0 = b_.CreatePHI(b_.getInt64Ty(), 2, "jb");
    j0->addIncoming(from, pre);
    llvm::Value *j1 =
        b_.CreateBinaryIntrinsic(llvm::Intrinsic::smin, b_.CreateAdd(j0, block), extent);
    body(j0, j1);
    j0->addIncoming(j1, b_.GetInsertBlock());
    auto *latch = b_.CreateCondBr(b_.CreateICmpSLT(j1, extent), header, exit);
    // A few iterations of a big body: unrolled, it multiplied the tiles'
    // code (and compile time: +0.2 s for mnist.nn) for nothing.
    llvm::LLVMContext &ctx = b_.getContext();
    llvm::MDNode *disable =
        llvm::MDNode::get(ctx, llvm::MDString::get(ctx, "llvm.loop.unroll.disable"));
    llvm::MDNode *loopID = llvm::MDNode::getDistinct(ctx, {nullptr, disable});
    loopID->replaceOperandWith(0, loopID);
    latch->setMetadata(llvm::LLVMContext::MD_loop, loopID);
    b_.SetInsertPoint(exit);
  }

  void dotTile(llvm::Value *i0, int64_t rows, llvm::Value *j0, int64_t cols) {
    Values aBase, bBase;
    for (int64_t r = 0; r < rows; ++r)
      aBase.push_back(rowStartA(offset(i0, r)));
    for (int64_t s = 0; s < cols; ++s)
      bBase.push_back(rowStartB(offset(j0, s)));
    auto step = [&](llvm::Value *k, const Values &in, llvm::Value *mask) {
      Values out = in, av;
      for (int64_t r = 0; r < rows; ++r)
        av.push_back(loadVector(a_, b_.CreateAdd(aBase[static_cast<size_t>(r)], k), mask));
      for (int64_t s = 0; s < cols; ++s) {
        llvm::Value *bv = loadVector(bm_, b_.CreateAdd(bBase[static_cast<size_t>(s)], k), mask);
        for (int64_t r = 0; r < rows; ++r) {
          size_t at = static_cast<size_t>(r * cols + s);
          out[at] = fma(av[static_cast<size_t>(r)], bv, out[at]);
        }
      }
      return out;
    };
    Values init(static_cast<size_t>(rows * cols), zeroVector());
    Values acc = carriedLoop(depth_, k_.lanes, init, [&](llvm::Value *k, const Values &in) {
      return step(k, in, nullptr);
    });
    // The partial vector at the end of K, if any: masked lanes load as zero.
    llvm::Value *kTail = b_.CreateAnd(depth_, i64(~static_cast<int64_t>(k_.lanes - 1)));
    llvm::Value *left = b_.CreateSub(depth_, kTail);
    acc = ifThen(b_.CreateICmpSGT(left, i64(0)), acc,
                 [&] { return step(kTail, acc, laneMask(left)); });
    // Row r's sums as vectors (lanes [0, n) of each), stored (and through
    // the epilogue) at once.
    Values sums = reduceTogether(acc);
    int64_t width = k_.lanes;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c0 = 0; c0 < cols; c0 += width) {
        int64_t first = r * cols + c0, n = std::min(width, cols - c0);
        size_t v = static_cast<size_t>(first / width);
        std::vector<int> lanes;
        for (int64_t t = 0; t < width; ++t)
          lanes.push_back(static_cast<int>(std::min(first % width + t, 2 * width - 1)));
        llvm::Value *next = v + 1 < sums.size() ? sums[v + 1] : zeroVector();
        store_(b_.CreateShuffleVector(sums[v], next, lanes), offset(i0, r), offset(j0, c0),
               laneMask(i64(n)));
      }
  }

  /// The sums of the vectors' lanes, as vectors of sums in the vectors'
  /// order (lane t of result v: the sum of vector v·lanes + t), each added
  /// up as a reduction of it alone is: halves added lane by lane (lane i
  /// and i + lanes/2, then i and i + lanes/4, ...). Rounds of pairs: a pair
  /// of vectors becomes one holding both halved, so 24 dot products take
  /// 23 shuffle pairs instead of 24 reductions of 4 steps each.
  Values reduceTogether(Values in) {
    int64_t lanes = k_.lanes;
    for (int64_t width = lanes; width > 1; width /= 2) {
      int64_t per = lanes / width; // inputs per vector, `width` lanes each
      if (in.size() % 2)
        in.push_back(zeroVector());
      std::vector<int> low, high;
      for (int64_t t = 0; t < lanes; ++t) {
        int64_t block = t / (width / 2), at = t % (width / 2);
        int64_t from = block < per ? block * width + at : lanes + (block - per) * width + at;
        low.push_back(static_cast<int>(from));
        high.push_back(static_cast<int>(from + width / 2));
      }
      Values out;
      for (size_t i = 0; i < in.size(); i += 2) {
        llvm::Value *firstHalves = b_.CreateShuffleVector(in[i], in[i + 1], low);
        llvm::Value *secondHalves = b_.CreateShuffleVector(in[i], in[i + 1], high);
        out.push_back(b_.CreateFAdd(firstHalves, secondHalves));
      }
      in = std::move(out);
    }
    return in;
  }

  // ---- 2b. dot scheme, packed ------------------------------------------------

  // A·Bᵀ for rows [lo, hi) of C and its columns in the inner range, B's
  // rows packed kPanelColumns at a time into a row-major panel (Bᵀ's
  // columns: its rows k are contiguous) that the broadcast scheme then
  // multiplies. The broadcast tiles reuse each loaded vector of B for 8
  // rows and read the panel in order; the dot tiles reduce every sum
  // across lanes and stream 6 rows of B from L2. Measured on the MLP's
  // first layer (128 x 784 by 256 with bias + ReLU, one core of an Intel
  // Xeon, --profile): 130-140 -> 164-168 GFLOP/s, the epoch 5-9% shorter;
  // with a panel per chunk (6, 900 KB) instead of per thread only 150-157,
  // and Adam's kernel after it 5% slower (its state pushed out of L2). In C
  // with intrinsics, the dot tiles reached 155-160 GFLOP/s whatever the
  // layout of B (packed too), broadcast tiles on packed B 200-210. Each
  // element of C is now a sum in order of k (the dot tiles: 16 partial
  // sums of every 16th k, added in a tree), so the bits differ.
  void emitPacked(llvm::Value *lo, llvm::Value *hi) {
    int64_t width = kPanelColumns, lanes = k_.lanes;
    assert(width == 3 * lanes && "a panel is one broadcast tile wide");
    GemmKind broadcast = k_;
    broadcast.scheme = Scheme::Broadcast;
    llvm::Value *ldPanel = i64(width);
    blockLoop(
        innerLo_ ? innerLo_ : i64(0), innerHi_ ? innerHi_ : cols_, ldPanel,
        [&](llvm::Value *j0, llvm::Value *j1) {
          llvm::Value *count = b_.CreateSub(j1, j0);
          pack(j0, count);
          GemmCall call{false, false, false, a_, panel_, c_, rows_, count, depth_, lda_, ldPanel};
          GemmBody panel(broadcast, fn_, b_, call,
                         [&](llvm::Value *v, llvm::Value *row, llvm::Value *col,
                             llvm::Value *mask) { store_(v, row, b_.CreateAdd(col, j0), mask); });
          panel.innerRange(lo, hi);
          panel.emit(i64(0), count);
        });
  }

  /// B's rows [j0, j0 + count) (count <= kPanelColumns) as the panel's
  /// columns: blocks of lanes x lanes transposed in registers, rows past
  /// B's last read as its last (their columns are never stored), the depth
  /// rounded up to whole vectors (zeros past it).
  void pack(llvm::Value *j0, llvm::Value *count) {
    int64_t lanes = k_.lanes;
    llvm::Value *last = b_.CreateSub(cols_, i64(1));
    llvm::Value *groups = b_.CreateUDiv(b_.CreateAdd(count, i64(lanes - 1)), i64(lanes));
    stepLoop(
        i64(0), groups, 1,
        [&](llvm::Value *g) {
          llvm::Value *first = b_.CreateAdd(j0, b_.CreateMul(g, i64(lanes)));
          Values rowStart;
          for (int64_t i = 0; i < lanes; ++i)
            rowStart.push_back(
                rowStartB(b_.CreateBinaryIntrinsic(llvm::Intrinsic::smin, offset(first, i), last)));
          llvm::Value *column = b_.CreateMul(g, i64(lanes)); // in the panel
          auto block = [&](llvm::Value *k, llvm::Value *mask) {
            Values v;
            for (int64_t i = 0; i < lanes; ++i)
              v.push_back(loadVector(bm_, b_.CreateAdd(rowStart[static_cast<size_t>(i)], k), mask));
            v = emitTranspose(b_, std::move(v));
            for (int64_t i = 0; i < lanes; ++i)
              storeVector(panel_,
                          b_.CreateAdd(b_.CreateMul(offset(k, i), i64(kPanelColumns)), column),
                          v[static_cast<size_t>(i)], nullptr);
          };
          llvm::Value *kTail = stepLoop(
              i64(0), depth_, lanes, [&](llvm::Value *k) { block(k, nullptr); }, "pk");
          llvm::Value *left = b_.CreateSub(depth_, kTail);
          ifThen(b_.CreateICmpSGT(left, i64(0)), {}, [&] {
            block(kTail, laneMask(left));
            return Values{};
          });
        },
        "pg");
  }

  // ---- 3. Aᵀ·Bᵀ: scalar ----------------------------------------------------

  void emitScalar(llvm::Value *lo, llvm::Value *hi) {
    stepLoop(
        lo, hi, 1,
        [&](llvm::Value *i) {
          stepLoop(
              i64(0), cols_, 1,
              [&](llvm::Value *j) {
                Values acc =
                    carriedLoop(depth_, 1, {llvm::ConstantFP::get(k_.fp, 0.0)},
                                [&](llvm::Value *k, const Values &in) -> Values {
                                  llvm::Value *a = b_.CreateLoad(k_.fp, address(a_, indexA(i, k)));
                                  llvm::Value *bv = b_.CreateLoad(
                                      k_.fp, address(bm_, b_.CreateAdd(b_.CreateMul(j, ldb_), k)));
                                  return {fma(a, bv, in[0])};
                                });
                store_(acc[0], i, j, nullptr);
              },
              "j");
        },
        "i");
  }

  const GemmKind &k_;
  llvm::Function *fn_;
  llvm::IRBuilder<> &b_;
  llvm::Value *a_, *bm_, *c_, *rows_, *cols_, *depth_, *lda_, *ldb_;
  llvm::Value *aRows_, *bRows_, *gridWidth_, *gridValid_, *ldc_, *depthWidth_, *depthValid_;
  StoreC store_;
  llvm::Value *innerLo_ = nullptr, *innerHi_ = nullptr;
  llvm::Value *panel_ = nullptr;
  llvm::FixedVectorType *vec_;
};

/// A GEMM function's parameter after lo and hi, from a GemmCall field.
struct OptionalOperand {
  const char *name;
  bool pointer; ///< else i64
  llvm::Value *GemmCall::*field;
};

/// The optional operands a function of `kind` takes, in their order (the
/// functions' parameters and the calls' arguments).
std::vector<OptionalOperand> optionalOperands(const GemmKind &kind) {
  std::vector<OptionalOperand> list;
  if (kind.tableA)
    list.push_back({"a_rows", true, &GemmCall::aRows});
  if (kind.tableB)
    list.push_back({"b_rows", true, &GemmCall::bRows});
  if (kind.grid)
    list.insert(list.end(), {{"grid_width", false, &GemmCall::gridWidth},
                             {"grid_valid", false, &GemmCall::gridValid},
                             {"ldc", false, &GemmCall::ldc}});
  if (kind.depthGrid)
    list.insert(list.end(), {{"depth_width", false, &GemmCall::depthWidth},
                             {"depth_valid", false, &GemmCall::depthValid}});
  return list;
}

/// The module's function for `kind`, emitted on first use. Not inlined: one
/// body serves every product, which is what keeps compile time flat.
llvm::Function *gemmFunction(llvm::Module &m, const GemmKind &kind) {
  std::string name = kind.name();
  if (llvm::Function *f = m.getFunction(name))
    return f;
  auto *ptr = llvm::PointerType::getUnqual(m.getContext());
  auto *i64 = llvm::Type::getInt64Ty(m.getContext());
  std::vector<llvm::Type *> params{ptr, ptr, ptr, i64, i64, i64, i64, i64, i64, i64};
  std::vector<const char *> names{"a", "b", "c", "rows", "cols", "depth", "lda", "ldb", "lo", "hi"};
  for (const OptionalOperand &o : optionalOperands(kind)) {
    params.push_back(o.pointer ? static_cast<llvm::Type *>(ptr) : i64);
    names.push_back(o.name);
  }
  auto *type = llvm::FunctionType::get(llvm::Type::getVoidTy(m.getContext()), params, false);
  auto *f = llvm::Function::Create(type, llvm::Function::InternalLinkage, name, m);
  f->addFnAttr(llvm::Attribute::NoUnwind);
  f->addFnAttr(llvm::Attribute::NoInline);
  // Only the double-precision twin (--gradcheck) uses f64: size over speed.
  if (kind.fp->isDoubleTy())
    f->addFnAttr(llvm::Attribute::OptimizeForSize);
  for (unsigned i = 0; i < names.size(); ++i)
    f->getArg(i)->setName(names[i]);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(m.getContext(), "entry", f));
  llvm::FastMathFlags fmf;
  fmf.setAllowContract(true);
  b.setFastMathFlags(fmf);
  GemmCall o{kind.transA,  false,        kind.accumulate, f->getArg(0), f->getArg(1), f->getArg(2),
             f->getArg(3), f->getArg(4), f->getArg(5),    f->getArg(6), f->getArg(7)};
  unsigned next = 10;
  for (const OptionalOperand &opt : optionalOperands(kind))
    o.*opt.field = f->getArg(next++);
  GemmBody(kind, f, b, o).emit(f->getArg(8), f->getArg(9));
  b.CreateRetVoid();
  return f;
}

/// A product's epilogue (the kernel's nodes after the product), applied to
/// each finished value of C — a vector of columns or one element — while it
/// is in registers. Operands are read at the same element (C's shape), at
/// the column (a bias row) or as scalars; only materialized values and
/// assigns are stored.
class Epilogue {
public:
  /// Constructed where the chunk starts, before its loops: the scalars the
  /// epilogue reads from memory (an optimizer's step size, its bias
  /// corrections) are loaded here once. Read in every tile instead, LLVM
  /// could not hoist them past the epilogue's stores, and with them what is
  /// computed of them alone (Adam's 1 / sqrt(bias_correction2)).
  Epilogue(const EmitContext &ctx, const Kernel &kernel)
      : ctx_(ctx), kernel_(kernel), product_(kernel.nodes.front()),
        domain_(ctx.graph.node(product_).shape) {
    std::set<ValueId> inKernel(kernel.nodes.begin(), kernel.nodes.end());
    for (ValueId id : kernel.nodes) {
      const Node &n = ctx.graph.node(id);
      if (n.op == Op::Assign)
        inKernel.insert(n.inputs[0]);
    }
    for (size_t i = 1; i < kernel.nodes.size(); ++i)
      for (ValueId v : ctx.graph.node(kernel.nodes[i]).inputs)
        if (ctx.graph.shape(v).rank() == 0 && !inKernel.contains(v) && !ctx.isInline(v) &&
            !scalars_.contains(v))
          scalars_[v] = ctx.load(v, ctx.i64(0));
  }

  void operator()(llvm::Value *value, llvm::Value *row, llvm::Value *col, llvm::Value *mask) {
    auto &b = ctx_.b;
    auto *vecType = llvm::dyn_cast<llvm::FixedVectorType>(value->getType());
    unsigned width = vecType ? vecType->getNumElements() : 1;
    llvm::Value *at = b.CreateAdd(b.CreateMul(row, ctx_.extent(domain_.dims[1])), col);
    std::map<ValueId, llvm::Value *> values{{product_, value}};
    auto operand = [&](ValueId v) -> llvm::Value * {
      if (auto it = values.find(v); it != values.end())
        return it->second;
      const Shape &s = ctx_.graph.shape(v);
      if (s.rank() > 0)
        return load(v, s == domain_ ? at : col, width, mask);
      auto preloaded = scalars_.find(v);
      llvm::Value *x = preloaded != scalars_.end() ? preloaded->second
                       : ctx_.isInline(v)          ? ctx_.inlineScalar(v)
                                                   : ctx_.load(v, ctx_.i64(0));
      return width > 1 ? b.CreateVectorSplat(width, x) : x;
    };
    for (size_t i = 1; i < kernel_.nodes.size(); ++i) {
      ValueId id = kernel_.nodes[i];
      const Node &n = ctx_.graph.node(id);
      if (n.op == Op::Assign) {
        store(n.inputs[0], at, operand(n.inputs[1]), mask);
        continue;
      }
      llvm::Value *x = operand(n.inputs[0]);
      llvm::Value *y = n.inputs.size() > 1 ? operand(n.inputs[1]) : nullptr;
      values[id] = emitElementwise(ctx_, n, x, y);
      if (ctx_.schedule.materialized[static_cast<size_t>(id)])
        store(id, at, values[id], mask);
    }
    if (ctx_.schedule.materialized[static_cast<size_t>(product_)])
      store(product_, at, value, mask);
  }

private:
  llvm::Value *load(ValueId v, llvm::Value *index, unsigned width, llvm::Value *mask) {
    if (width == 1)
      return ctx_.load(v, index);
    auto *type = llvm::FixedVectorType::get(ctx_.fp(), width);
    return loadVector(ctx_.b, type, ctx_.pointer(v), index, mask);
  }

  void store(ValueId v, llvm::Value *index, llvm::Value *x, llvm::Value *mask) {
    if (!x->getType()->isVectorTy()) {
      ctx_.store(v, index, x);
      return;
    }
    storeVector(ctx_.b, ctx_.pointer(v), index, x, mask);
  }

  const EmitContext &ctx_;
  const Kernel &kernel_;
  ValueId product_;
  Shape domain_;
  std::map<ValueId, llvm::Value *> scalars_; ///< loaded at the chunk's start
};

/// One product's operands and extents in the function being emitted.
struct Product {
  GemmKind kind;
  llvm::Value *a, *b, *c, *rows, *cols, *depth, *lda, *ldb;

  Product(const EmitContext &ctx, const Kernel &kernel)
      : kind(ctx, ctx.graph.node(kernel.nodes.front())) {
    ValueId cv = kernel.nodes.front();
    const Node &n = ctx.graph.node(cv);
    const Shape &as = ctx.graph.shape(n.inputs[0]), &bs = ctx.graph.shape(n.inputs[1]);
    a = ctx.pointer(n.inputs[0]);
    b = ctx.pointer(n.inputs[1]);
    c = ctx.pointer(cv);
    // Operands of higher rank are matrices of their leading dims by their
    // last (Ops.def).
    auto leading = [&](const Shape &s) {
      llvm::Value *r = ctx.extent(s.dims[0]);
      for (size_t i = 1; i + 1 < s.rank(); ++i)
        r = ctx.b.CreateMul(r, ctx.extent(s.dims[i]));
      return r;
    };
    rows = leading(n.shape);
    cols = ctx.extent(n.shape.dims.back());
    depth = n.attrs.transA ? leading(as) : ctx.extent(as.dims.back());
    lda = ctx.extent(as.dims.back());
    ldb = ctx.extent(bs.dims.back());
    // Chunks split a weight's rows (its output features) when it is the
    // forward product's Bᵀ or the gradient the kernel's update applies to
    // it: on two threads each core then reads and writes its own half of
    // the weight (and of Adam's moments) in both kernels, instead of
    // reading all of it forward and writing half backward, the other
    // core's lines moving over every step (the MLP's 2-thread epoch on an
    // Intel Xeon: 0.283 -> 0.195 s; one thread: within noise, +0-3%).
    // Only a weight with rows for kMaxChunks tiles of the broadcast scheme,
    // the same test forward and backward so both split it alike (a narrow
    // one, a regression's single output, would leave threads without
    // chunks), and a product with an epilogue (tiles inline; the shared
    // functions split the outer dimension).
    if (kernel.nodes.size() == 1)
      return;
    auto manyRows = [&](int64_t rows) { return rows >= kMaxChunks * kind.broadcastRows(); };
    if (kind.scheme == Scheme::Dot)
      byWeightRows = ctx.graph.node(n.inputs[1]).op == Op::Param && manyRows(bs.dims.front());
    if (kind.scheme == Scheme::Broadcast && kind.transA && manyRows(n.shape.dims.front()))
      for (ValueId v : kernel.nodes)
        if (const Node &u = ctx.graph.node(v); u.op == Op::Assign &&
                                               ctx.graph.node(u.inputs[0]).op == Op::Param &&
                                               ctx.graph.shape(u.inputs[0]) == n.shape)
          byWeightRows = true;
    packed = kind.wide && kind.lanes * 3 == kPanelColumns && packedWeightProduct(ctx.graph, kernel);
    assert(!packed || (byWeightRows && kind.scheme == Scheme::Dot));
  }

  /// The dimension chunks split.
  llvm::Value *split() const {
    return byWeightRows ? (kind.scheme == Scheme::Dot ? cols : rows) : kind.outer(rows, cols);
  }
  /// The outer dimension's tile: chunks start at multiples of it. A packed
  /// product's chunks are as many as its panels but start at any vector,
  /// so that threads get equal shares (chunkGranule).
  int64_t granule() const {
    if (packed)
      return kind.lanes;
    if (!byWeightRows)
      return kind.granule();
    return kind.scheme == Scheme::Dot ? kind.dotCols().front() : kind.broadcastRows();
  }

  /// The units the chunk count is made of.
  int64_t chunkGranule() const { return packed ? kPanelColumns : granule(); }

  bool byWeightRows = false;
  bool packed = false; ///< packedWeightProduct, with 32 registers

  /// The part [lo, hi) of the split dimension: a call of the shared
  /// function, or the tiles inline when an epilogue takes C's values.
  void emit(const EmitContext &ctx, const Kernel &kernel, llvm::Value *lo, llvm::Value *hi) const {
    if (kernel.nodes.size() == 1) {
      llvm::Function *f = gemmFunction(*ctx.fn->getParent(), kind);
      ctx.b.CreateCall(f, {a, b, c, rows, cols, depth, lda, ldb, lo, hi});
      return;
    }
    Epilogue epilogue(ctx, kernel);
    GemmBody body(kind, ctx.fn, ctx.b,
                  {kind.transA, false, false, a, b, c, rows, cols, depth, lda, ldb},
                  [&](llvm::Value *v, llvm::Value *row, llvm::Value *col, llvm::Value *mask) {
                    epilogue(v, row, col, mask);
                  });
    if (!byWeightRows) {
      body.emit(lo, hi);
      return;
    }
    if (packed) { // the panel of this thread's chunks (MemoryPlanner.h)
      int kernelIndex = ctx.schedule.kernelOf[static_cast<size_t>(kernel.nodes.front())];
      int64_t perChunk = kernelWorkspace(ctx.graph, kernel).perChunk();
      llvm::Value *base = ctx.workspace(kernelIndex);
      llvm::Value *slot = ctx.chunkSlot();
      body.packInto(
          ctx.b.CreateInBoundsGEP(ctx.fp(), base, ctx.b.CreateMul(slot, ctx.i64(perChunk))));
    }
    body.innerRange(lo, hi);
    body.emit(ctx.i64(0), kind.outer(rows, cols));
  }
};

} // namespace

void emitGemmCall(const EmitContext &ctx, const GemmCall &g) {
  GemmKind kind(ctx, g);
  llvm::Function *f = gemmFunction(*ctx.fn->getParent(), kind);
  std::vector<llvm::Value *> args{g.a,     g.b,   g.c,   g.rows,     g.cols,
                                  g.depth, g.lda, g.ldb, ctx.i64(0), kind.outer(g.rows, g.cols)};
  for (const OptionalOperand &o : optionalOperands(kind))
    args.push_back(g.*o.field);
  ctx.b.CreateCall(f, args);
}

void emitGemmInline(const EmitContext &ctx, const GemmCall &g, const GemmStore &store) {
  GemmKind kind(ctx, g);
  GemmBody(kind, ctx.fn, ctx.b, g, store).emit(ctx.i64(0), kind.outer(g.rows, g.cols));
}

// One chunk per ~2 MFLOP of work, in whole tiles of the outer dimension.
llvm::Value *matMulChunkCount(const EmitContext &ctx, const Kernel &kernel) {
  Product p(ctx, kernel);
  auto &b = ctx.b;
  llvm::Value *flops = b.CreateMul(b.CreateMul(p.rows, p.cols), b.CreateMul(p.depth, ctx.i64(2)));
  llvm::Value *byWork = b.CreateLShr(flops, ctx.i64(21));
  return ctx.chunkCount(byWork, ctx.chunkUnits(p.split(), p.chunkGranule()));
}

void emitMatMulChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                     llvm::Value *chunks) {
  Product p(ctx, kernel);
  auto [lo, hi] = ctx.chunkRange(chunk, chunks, p.split(), p.granule());
  p.emit(ctx, kernel, lo, hi);
}

} // namespace netc
