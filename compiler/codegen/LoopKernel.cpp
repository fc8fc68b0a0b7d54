// LoopKernel.cpp - lowering of a fused loop kernel.
//
// 1. Before the loop: zero the reduction targets, load scalars once.
// 2. The loop: one flat loop when every access has the domain's shape or is
//    a scalar (the common case, and the easiest for the vectorizer); else one
//    loop per dimension with broadcast strides.
// 3. The body computes the kernel's nodes in order, keeping values in
//    registers, storing only materialized ones; sums accumulate in registers
//    (reassociation allowed, so they vectorize), partial sums in memory.
// 4. After the loop: store the sums.
#include "compiler/codegen/Kernels.h"
#include "compiler/graph/Ops.h"

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>

#include <cassert>
#include <map>
#include <set>

namespace netc {

namespace {} // namespace

// Scalars or vectors alike: constants take the operand's type.
llvm::Value *emitElementwise(const EmitContext &ctx, const Node &n, llvm::Value *a,
                             llvm::Value *bv) {
  auto &b = ctx.b;
  llvm::Module *m = ctx.fn->getParent();
  auto intrinsic = [&](llvm::Intrinsic::ID id, llvm::Value *x) {
    return b.CreateUnaryIntrinsic(id, x);
  };
  auto libm = [&](const char *name, llvm::Value *x) -> llvm::Value * {
    std::string fn = ctx.fp()->isDoubleTy() ? std::string(name) : std::string(name) + "f";
    auto callee = m->getOrInsertFunction(fn, llvm::FunctionType::get(ctx.fp(), {ctx.fp()}, false));
    auto one = [&](llvm::Value *v) {
      auto *call = b.CreateCall(callee, {v});
      call->setDoesNotThrow();
      call->setOnlyReadsMemory();
      return call;
    };
    auto *vector = llvm::dyn_cast<llvm::FixedVectorType>(x->getType());
    if (!vector)
      return one(x);
    // A window kernel's vectors (a pooling computing its input plane, a
    // weight gradient its dy: WindowKernel.cpp): lane by lane, the same
    // function as the scalar loops call.
    llvm::Value *lanes = llvm::PoisonValue::get(vector);
    for (unsigned i = 0; i < vector->getNumElements(); ++i)
      lanes = b.CreateInsertElement(lanes, one(b.CreateExtractElement(x, i)), i);
    return lanes;
  };
  llvm::Type *type = a->getType();
  llvm::Value *zero = llvm::ConstantFP::get(type, 0.0);
  llvm::Value *one = llvm::ConstantFP::get(type, 1.0);
  // On Intel's AVX-512 cores (TargetInfo::updateEstimates) the optimizer's
  // update (Adam's, RMSprop's m / (sqrt(v) + eps) on every parameter)
  // divides and takes square roots through the reciprocal estimates, each
  // refined by a Newton step (kReciprocalEstimates): a few ulps from the
  // rounded result, where the divider's throughput bounds them otherwise
  // (vsqrtps and vdivps share it; the MLP's dW1 kernel with Adam's update
  // took 0.220 s per epoch, now 0.19 on the Intel Xeon). Not in double (the
  // --gradcheck twin) nor elsewhere in a step. The flags let LLVM's DAG
  // combiner estimate: 1 / sqrt(x) as rsqrt, x / y as x · rcp(y) (finite
  // operands promised: an update with infinities has diverged anyway).
  bool estimate = ctx.estimates && n.phase == Phase::Update && type->getScalarType()->isFloatTy();
  auto estimated = [&](llvm::Value *v) {
    llvm::FastMathFlags f = b.getFastMathFlags();
    f.setApproxFunc();
    f.setAllowReciprocal();
    f.setNoInfs();
    llvm::cast<llvm::Instruction>(v)->setFastMathFlags(f);
    return v;
  };
  switch (n.op) {
  case Op::Neg:
    return b.CreateFNeg(a);
  case Op::Exp:
    return intrinsic(llvm::Intrinsic::exp, a);
  case Op::Log:
    return intrinsic(llvm::Intrinsic::log, a);
  case Op::Sin:
    return intrinsic(llvm::Intrinsic::sin, a);
  case Op::Cos:
    return intrinsic(llvm::Intrinsic::cos, a);
  case Op::Sqrt: {
    if (!estimate)
      return intrinsic(llvm::Intrinsic::sqrt, a);
    // x · rsqrt(x); sqrt(0) = 0 (0 · inf is not). The estimate reads a
    // denormal x as 0 (a NaN came out: Adam with gradients near 1e-20, whose
    // squares are denormal, made the weights NaN), so a denormal x is scaled
    // first: sqrt(x) = sqrt(x · 2^64) · 2^-32.
    // (One statement each: the IR's order does not depend on the compiler
    // that built netc.)
    llvm::Value *tiny = b.CreateFCmpOLT(a, llvm::ConstantFP::get(type, kSmallestNormal));
    llvm::Value *up = b.CreateFMul(a, llvm::ConstantFP::get(type, 0x1p64));
    llvm::Value *x = b.CreateSelect(tiny, up, a);
    llvm::Value *r = estimated(b.CreateFDiv(one, estimated(intrinsic(llvm::Intrinsic::sqrt, x))));
    llvm::Value *s = b.CreateFMul(x, r);
    llvm::Value *down = b.CreateFMul(s, llvm::ConstantFP::get(type, 0x1p-32));
    llvm::Value *root = b.CreateSelect(tiny, down, s);
    llvm::Value *isZero = b.CreateFCmpOEQ(a, zero);
    return b.CreateSelect(isZero, zero, root);
  }
  case Op::Abs:
    return intrinsic(llvm::Intrinsic::fabs, a);
  case Op::Tanh:
    return libm("tanh", a);
  case Op::Sigmoid:
    return b.CreateFDiv(one, b.CreateFAdd(one, intrinsic(llvm::Intrinsic::exp, b.CreateFNeg(a))));
  case Op::Relu: // NaN stays NaN, as in PyTorch (unordered compares true)
    return b.CreateSelect(b.CreateFCmpUGT(a, zero), a, zero);
  case Op::Step:
    return b.CreateSelect(b.CreateFCmpOGT(a, zero), one, zero);
  case Op::FlushDenormal: // |x| < FLT_MIN (NaN not): 0
    return b.CreateSelect(b.CreateFCmpOLT(intrinsic(llvm::Intrinsic::fabs, a),
                                          llvm::ConstantFP::get(type, kSmallestNormal)),
                          zero, a);
  case Op::Sign:
    return b.CreateFSub(b.CreateUIToFP(b.CreateFCmpOGT(a, zero), type),
                        b.CreateUIToFP(b.CreateFCmpOLT(a, zero), type));
  case Op::PowI: {
    // Square-and-multiply; a negative exponent is 1 / x^|k|.
    int64_t k = n.attrs.k < 0 ? -n.attrs.k : n.attrs.k;
    llvm::Value *result = nullptr, *base = a;
    for (; k > 0; k >>= 1) {
      if (k & 1)
        result = result ? b.CreateFMul(result, base) : base;
      if (k > 1)
        base = b.CreateFMul(base, base);
    }
    if (!result)
      result = one;
    return n.attrs.k < 0 ? b.CreateFDiv(one, result) : result;
  }
  case Op::Pow:
    return b.CreateBinaryIntrinsic(llvm::Intrinsic::pow, a,
                                   llvm::ConstantFP::get(type, n.attrs.value));
  case Op::Add:
    return b.CreateFAdd(a, bv);
  case Op::Sub:
    return b.CreateFSub(a, bv);
  case Op::Mul:
    return b.CreateFMul(a, bv);
  case Op::Div:
    return estimate ? estimated(b.CreateFDiv(a, bv)) : b.CreateFDiv(a, bv);
  case Op::Max: // a NaN operand gives NaN, as torch.maximum
    return b.CreateSelect(b.CreateFCmpUNO(a, bv), b.CreateFAdd(a, bv),
                          b.CreateSelect(b.CreateFCmpOGT(a, bv), a, bv));
  default:
    break;
  }
  assert(false && "not an elementwise op");
  return nullptr;
}

namespace {

class LoopEmitter {
public:
  LoopEmitter(const EmitContext &ctx, const Kernel &k) : ctx_(ctx), k_(k) {
    inKernel_.insert(k.nodes.begin(), k.nodes.end());
  }

  void run() { runRange(nullptr, nullptr); }

  /// Sums into chunk `chunk`'s partial targets (loopSumsSplit), not into
  /// the results.
  void sumIntoPartials(llvm::Value *chunk) { chunk_ = chunk; }

  /// The sums' results from the chunks' partial targets, added in chunk
  /// order (after all chunks have run).
  void addPartials(llvm::Value *chunks) {
    auto &b = ctx_.b;
    for (ValueId id : k_.nodes) {
      if (g().node(id).op != Op::SumTo)
        continue;
      ctx_.loop(ctx_.numel(g().shape(id)), [&](llvm::Value *e) {
        llvm::Value *sum = ctx_.sumOverChunks(chunks, [&](llvm::Value *chunk) {
          chunk_ = chunk;
          return b.CreateLoad(ctx_.fp(), target(id, e));
        });
        chunk_ = nullptr;
        ctx_.store(id, e, sum);
      });
    }
  }

  /// Only the part of the domain whose outer index (the flat index, or the
  /// first dimension's) lies in [lo, hi); the whole domain without a range.
  void runRange(llvm::Value *lo, llvm::Value *hi) {
    prepare();
    const Shape &d = k_.domain;
    if (d.rank() == 0) {
      body({});
    } else if (flat()) {
      outerLoop(
          ctx_.numel(d), lo, hi, [&](llvm::Value *e) { body({e}); }, "e");
    } else {
      outerLoop(
          ctx_.extent(d.dims[0]), lo, hi, [&](llvm::Value *i) { nest(1, {i}); }, "i");
    }
    for (auto &[v, acc] : sums_)
      ctx_.store(v, ctx_.i64(0), ctx_.b.CreateLoad(ctx_.fp(), acc));
  }

  /// The extent of the outer loop: elements, or the first dimension.
  llvm::Value *outerExtent() const {
    const Shape &d = k_.domain;
    return flat() ? ctx_.numel(d) : ctx_.extent(d.dims[0]);
  }
  bool isFlat() const { return flat(); }

private:
  void outerLoop(llvm::Value *extent, llvm::Value *lo, llvm::Value *hi,
                 const std::function<void(llvm::Value *)> &f, const char *name) {
    if (!lo) {
      ctx_.loop(extent, f, name);
      return;
    }
    ctx_.loop(
        ctx_.b.CreateSub(hi, lo), [&](llvm::Value *i) { f(ctx_.b.CreateAdd(lo, i)); }, name);
  }

  const Graph &g() const { return ctx_.graph; }
  bool local(ValueId v) const { return inKernel_.count(v) != 0; }

  // Every memory access the kernel makes: operands from outside, its own
  // stores, partial-sum targets.
  bool flat() const {
    for (ValueId id : k_.nodes) {
      const Node &n = g().node(id);
      if (n.op == Op::SumTo)
        return false;
      for (ValueId v : n.inputs)
        if (!local(v) && !ctx_.isInline(v) && g().shape(v).rank() != 0 &&
            !(g().shape(v) == k_.domain))
          return false;
    }
    return true;
  }

  void prepare() {
    auto &b = ctx_.b;
    innerStart_ = flat() ? k_.domain.rank() : blockStart();
    for (ValueId id : k_.nodes) {
      const Node &n = g().node(id);
      if (n.op == Op::Sum) {
        llvm::IRBuilder<> entry(&ctx_.fn->getEntryBlock(), ctx_.fn->getEntryBlock().begin());
        llvm::AllocaInst *acc = entry.CreateAlloca(ctx_.fp());
        b.CreateStore(llvm::ConstantFP::get(ctx_.fp(), 0.0), acc);
        sums_.emplace_back(id, acc);
      } else if (n.op == Op::SumTo) {
        ctx_.loop(ctx_.numel(n.shape), [&](llvm::Value *i) {
          b.CreateStore(llvm::ConstantFP::get(ctx_.fp(), 0.0), target(id, i));
        });
        llvm::IRBuilder<> entry(&ctx_.fn->getEntryBlock(), ctx_.fn->getEntryBlock().begin());
        blockSums_.emplace_back(id, entry.CreateAlloca(ctx_.fp()));
      }
      // Scalars from outside the kernel: load once.
      for (ValueId v : n.inputs)
        if (!local(v) && g().shape(v).rank() == 0 && !scalars_.count(v))
          scalars_[v] = ctx_.isInline(v) ? ctx_.inlineScalar(v) : ctx_.load(v, ctx_.i64(0));
    }
  }

  void nest(size_t dim, std::vector<llvm::Value *> idx) {
    if (dim == k_.domain.rank())
      return body(idx);
    if (dim == innerStart_) {
      // Sums to shapes with every dimension from here on reduced: the
      // block's part in a register (a vectorized reduction), added to the
      // target once per block.
      auto &b = ctx_.b;
      for (auto &[v, acc] : blockSums_)
        b.CreateStore(llvm::ConstantFP::get(ctx_.fp(), 0.0), acc);
      inBlock_ = true;
      // The block is contiguous in every domain-shaped tensor and constant
      // in the others: one flat loop over its elements.
      llvm::Value *outer = ctx_.i64(0);
      for (size_t d = 0; d < dim; ++d)
        outer = b.CreateAdd(b.CreateMul(outer, ctx_.extent(k_.domain.dims[d])), idx[d]);
      int64_t size = 1;
      for (size_t d = dim; d < k_.domain.rank(); ++d)
        size *= k_.domain.dims[d];
      blockBase_ = b.CreateMul(outer, ctx_.i64(size));
      ctx_.loop(
          ctx_.i64(size),
          [&](llvm::Value *e) {
            blockElem_ = e;
            body(idx);
            blockElem_ = nullptr;
          },
          "e");
      inBlock_ = false;
      for (auto &[v, acc] : blockSums_) {
        llvm::Value *at = target(v, index(g().shape(v), idx));
        llvm::Value *sum = b.CreateFAdd(b.CreateLoad(ctx_.fp(), at), b.CreateLoad(ctx_.fp(), acc));
        b.CreateStore(sum, at);
      }
      return;
    }
    nestLoops(dim, idx);
  }

  void nestLoops(size_t dim, const std::vector<llvm::Value *> &idx) {
    ctx_.loop(ctx_.extent(k_.domain.dims[dim]), [&](llvm::Value *i) {
      auto inner = idx;
      inner.push_back(i);
      nest(dim + 1, inner);
    });
  }

  /// Flat index into a tensor of `shape` broadcast into the domain.
  llvm::Value *index(const Shape &shape, const std::vector<llvm::Value *> &idx) {
    if (shape.rank() == 0)
      return ctx_.i64(0);
    if (blockElem_ && shape == k_.domain)
      return ctx_.b.CreateAdd(blockBase_, blockElem_);
    // In a block, other shapes are 1 along its dimensions: idx's outer part.
    if (idx.size() == 1 && shape == k_.domain)
      return idx[0]; // flat loop
    auto &b = ctx_.b;
    llvm::Value *flatIndex = ctx_.i64(0);
    size_t offset = k_.domain.rank() - shape.rank();
    for (size_t i = 0; i < shape.rank(); ++i) {
      flatIndex = b.CreateMul(flatIndex, ctx_.extent(shape.dims[i]));
      if (shape.dims[i] != 1)
        flatIndex = b.CreateAdd(flatIndex, idx[i + offset]);
    }
    return flatIndex;
  }

  llvm::Value *operand(ValueId v, const std::vector<llvm::Value *> &idx) {
    if (auto it = values_.find(v); it != values_.end())
      return it->second;
    if (auto it = scalars_.find(v); it != scalars_.end())
      return it->second;
    return ctx_.load(v, index(g().shape(v), idx));
  }

  void body(const std::vector<llvm::Value *> &idx) {
    auto &b = ctx_.b;
    values_.clear();
    llvm::Value *here = index(k_.domain, idx);
    for (ValueId id : k_.nodes) {
      const Node &n = g().node(id);
      llvm::Value *result = nullptr;
      switch (opKind(n.op)) {
      case OpKind::Elementwise:
        if (n.op == Op::DropoutTrain) {
          result = dropout(n, idx);
          break;
        }
        result = emitElementwise(ctx_, n, operand(n.inputs[0], idx),
                                 n.inputs.size() > 1 ? operand(n.inputs[1], idx) : nullptr);
        break;
      case OpKind::Effect:
        ctx_.store(n.inputs[0], here, operand(n.inputs[1], idx));
        continue;
      default:
        break;
      }
      if (n.op == Op::BroadcastTo) {
        result = operand(n.inputs[0], idx);
      } else if (n.op == Op::Sum) {
        llvm::AllocaInst *acc = accumulator(sums_, id);
        llvm::Value *sum = b.CreateFAdd(b.CreateLoad(ctx_.fp(), acc), operand(n.inputs[0], idx));
        llvm::cast<llvm::Instruction>(sum)->setHasAllowReassoc(true);
        b.CreateStore(sum, acc);
        continue;
      } else if (n.op == Op::SumTo && inBlock_) {
        llvm::AllocaInst *acc = accumulator(blockSums_, id);
        llvm::Value *sum = b.CreateFAdd(b.CreateLoad(ctx_.fp(), acc), operand(n.inputs[0], idx));
        llvm::cast<llvm::Instruction>(sum)->setHasAllowReassoc(true);
        llvm::cast<llvm::Instruction>(sum)->setHasNoSignedZeros(true);
        b.CreateStore(sum, acc);
        continue;
      } else if (n.op == Op::SumTo) {
        llvm::Value *at = target(id, index(n.shape, idx));
        llvm::Value *sum = b.CreateFAdd(b.CreateLoad(ctx_.fp(), at), operand(n.inputs[0], idx));
        llvm::cast<llvm::Instruction>(sum)->setHasAllowReassoc(true);
        b.CreateStore(sum, at);
        continue;
      }
      assert(result && "node kind not handled in a loop kernel");
      values_[id] = result;
      if (ctx_.schedule.materialized[static_cast<size_t>(id)])
        ctx_.store(id, here, result);
    }
  }

  /// runtime.h's netc_dropout_bits, inline: x / (1 - p) where kept, else 0.
  llvm::Value *dropout(const Node &n, const std::vector<llvm::Value *> &idx) {
    auto &b = ctx_.b;
    auto u64 = [&](uint64_t v) { return b.getInt64(v); };
    auto mix = [&](llvm::Value *h) {
      h = b.CreateXor(h, b.CreateLShr(h, 30));
      h = b.CreateMul(h, u64(0xBF58476D1CE4E5B9ull));
      h = b.CreateXor(h, b.CreateLShr(h, 27));
      h = b.CreateMul(h, u64(0x94D049BB133111EBull));
      return b.CreateXor(h, b.CreateLShr(h, 31));
    };
    llvm::Value *low = b.CreateFPToUI(operand(n.inputs[1], idx), b.getInt64Ty());
    llvm::Value *high = b.CreateFPToUI(operand(n.inputs[2], idx), b.getInt64Ty());
    llvm::Value *key = b.CreateOr(low, b.CreateShl(high, 24));
    auto stream = static_cast<uint64_t>(n.attrs.k) * 0x9E3779B97F4A7C15ull;
    llvm::Value *at = b.CreateMul(index(n.shape, idx), u64(0xD1B54A32D192ED03ull));
    llvm::Value *bits = b.CreateLShr(mix(b.CreateXor(b.CreateXor(key, u64(stream)), at)), 40);
    llvm::Value *keep = b.CreateICmpUGE(bits, u64(dropoutThreshold(n.attrs.value)));
    llvm::Value *x = operand(n.inputs[0], idx);
    double scale = ctx_.fp()->isDoubleTy()
                       ? 1.0 / (1.0 - n.attrs.value)
                       : static_cast<double>(1.0f / static_cast<float>(1.0 - n.attrs.value));
    return b.CreateSelect(keep, b.CreateFMul(x, llvm::ConstantFP::get(ctx_.fp(), scale)),
                          llvm::ConstantFP::get(ctx_.fp(), 0.0));
  }

  /// See loopBlockStart (Fuse.h): the block runs as one flat loop, its
  /// sums in registers.
  size_t blockStart() const { return loopBlockStart(g(), k_); }

  /// Where sum_to `id` accumulates element `at`: its result, or this
  /// chunk's partial target in the kernel's workspace (MemoryPlanner.h).
  llvm::Value *target(ValueId id, llvm::Value *at) {
    auto &b = ctx_.b;
    if (!chunk_)
      return b.CreateInBoundsGEP(ctx_.fp(), ctx_.pointer(id), at);
    int kernel = ctx_.schedule.kernelOf[static_cast<size_t>(id)];
    int64_t perChunk = 0, offset = 0;
    for (ValueId v : k_.nodes)
      if (g().node(v).op == Op::SumTo) {
        if (v == id)
          offset = perChunk;
        perChunk += g().shape(v).constNumel();
      }
    llvm::Value *base = ctx_.workspace(kernel);
    llvm::Value *element =
        b.CreateAdd(b.CreateMul(chunk_, ctx_.i64(perChunk)), b.CreateAdd(ctx_.i64(offset), at));
    return b.CreateInBoundsGEP(ctx_.fp(), base, element);
  }

  /// The register a sum (in `sums_`) or a block's sum_to (in `blockSums_`)
  /// accumulates in.
  using Accumulators = std::vector<std::pair<ValueId, llvm::AllocaInst *>>;
  static llvm::AllocaInst *accumulator(const Accumulators &list, ValueId id) {
    for (auto &[v, acc] : list)
      if (v == id)
        return acc;
    assert(false && "a sum without its accumulator");
    return nullptr;
  }

  const EmitContext &ctx_;
  const Kernel &k_;
  std::set<ValueId> inKernel_;
  std::map<ValueId, llvm::Value *> scalars_;
  std::map<ValueId, llvm::Value *> values_;
  Accumulators sums_;
  Accumulators blockSums_;
  llvm::Value *chunk_ = nullptr; ///< summing into this chunk's partial targets
  size_t innerStart_ = 0;        ///< see blockStart
  bool inBlock_ = false;
  llvm::Value *blockBase_ = nullptr; ///< in a block: its first flat index
  llvm::Value *blockElem_ = nullptr; ///< in a block: the element in it
};

} // namespace

void emitLoopKernel(const EmitContext &ctx, const Kernel &kernel) {
  LoopEmitter(ctx, kernel).run();
}

// Elementwise work and assigns only: every element is computed from the same
// index of domain-shaped tensors (or from scalars and broadcasts nothing in
// the kernel writes), so disjoint ranges are independent. Other sums are not
// split; block sums that reduce the first dimension (loopSumsSplit) are, each
// chunk into its own partial sums: the chunk count depends on the shapes
// only, so the order of additions does too.
bool loopKernelSplits(const Graph &graph, const Kernel &kernel) {
  if (kernel.domain.rank() == 0)
    return false;
  if (loopSumsSplit(graph, kernel))
    return true;
  std::set<ValueId> written;
  for (ValueId id : kernel.nodes) {
    const Node &n = graph.node(id);
    if (n.op == Op::Sum || n.op == Op::SumTo)
      return false;
    if (opKind(n.op) == OpKind::Effect)
      written.insert(n.inputs[0]);
  }
  for (ValueId id : kernel.nodes)
    for (ValueId v : graph.node(id).inputs)
      if (written.count(v) && !(graph.shape(v) == kernel.domain))
        return false;
  return true;
}

namespace {

// The unit of a loop kernel's chunks: 16-element groups of a flat loop, so
// every chunk but the last starts and ends on a vector; else one index of
// the first dimension.
int64_t loopGranule(const LoopEmitter &e) { return e.isFlat() ? 16 : 1; }

} // namespace

// One chunk per 16K elements.
llvm::Value *loopChunkCount(const EmitContext &ctx, const Kernel &kernel) {
  LoopEmitter e(ctx, kernel);
  llvm::Value *byWork = ctx.b.CreateLShr(ctx.numel(kernel.domain), ctx.i64(14));
  return ctx.chunkCount(byWork, ctx.chunkUnits(e.outerExtent(), loopGranule(e)));
}

void emitLoopChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                   llvm::Value *chunks) {
  LoopEmitter e(ctx, kernel);
  auto [lo, hi] = ctx.chunkRange(chunk, chunks, e.outerExtent(), loopGranule(e));
  if (loopSumsSplit(ctx.graph, kernel))
    e.sumIntoPartials(chunk);
  e.runRange(lo, hi);
}

void emitLoopFinish(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunks) {
  if (!loopSumsSplit(ctx.graph, kernel))
    return;
  LoopEmitter(ctx, kernel).addPartials(chunks);
}

} // namespace netc
