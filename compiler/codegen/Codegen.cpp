// Codegen.cpp - entry points, initialisation and the model description.
#include "compiler/codegen/Codegen.h"
#include "compiler/transforms/Modes.h"
#include "compiler/transforms/Shards.h"
#include "compiler/codegen/Kernels.h"

#include <fmt/format.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/DataLayout.h>
#include <llvm/IR/StructuralHash.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Transforms/Utils/FunctionComparator.h>
#include <nlohmann/json.hpp>

#include <cassert>
#include <cctype>
#include <memory>
#include <unordered_map>

#ifndef NETC_VERSION
#define NETC_VERSION "0.0.0"
#endif

namespace netc {

namespace {

nlohmann::json shapeJson(const Shape &s) {
  nlohmann::json dims = nlohmann::json::array();
  for (auto d : s.dims)
    dims.push_back(d);
  return dims;
}

const char *initKind(InitSpec::Kind k) {
  switch (k) {
  case InitSpec::Kind::Constant:
    return "constant";
  case InitSpec::Kind::Normal:
    return "normal";
  case InitSpec::Kind::Uniform:
    return "uniform";
  }
  return "constant";
}

/// What an entry point returns and which extra pointer it takes.
enum class EntryKind {
  Loss,      ///< T f(persist, inputs, scratch, n, hparams): the loss
  Gradients, ///< T f(..., hparams, T *grads): the loss; gradients to grads
  Predict,   ///< void f(persist, inputs, scratch, n, float *out)
  /// float f(..., hparams, float *grads, void (*ready)(void *, i32), void
  /// *context): the loss; each gradient to grads as soon as its kernel is
  /// done, then ready(context, its parameter) when ready is not null
  ShardGradients,
  Update, ///< void f(persist, inputs: the gradients, scratch, n, hparams)
  Probe,  ///< as Loss: --check-finite's diagnosis, not optimized (optnone)
};

/// A builder at the end of `fn`'s entry block (before its terminator, if
/// any): values made there dominate every use in the function.
llvm::IRBuilder<> atEntryEnd(llvm::Function *fn) {
  llvm::BasicBlock &entry = fn->getEntryBlock();
  return llvm::IRBuilder<>(&entry, entry.getTerminator() ? entry.getTerminator()->getIterator()
                                                         : entry.end());
}

/// A segment of `entry`: a function with its parameters and attributes,
/// returning void, never inlined, named `name`, called at `caller`'s
/// insertion point with `entry`'s arguments. A deep model's entry points,
/// gradient copies and init are cut into segments: LLVM's schedulers, loop
/// passes and two-address pass take time quadratic in a function's length.
llvm::Function *addSegment(llvm::Function *entry, llvm::IRBuilder<> &caller,
                           const llvm::Twine &name) {
  auto *type = llvm::FunctionType::get(caller.getVoidTy(), entry->getFunctionType()->params(),
                                       false);
  auto *segment =
      llvm::Function::Create(type, llvm::Function::InternalLinkage, name, entry->getParent());
  segment->copyAttributesFrom(entry);
  segment->addFnAttr(llvm::Attribute::NoInline);
  std::vector<llvm::Value *> args;
  for (llvm::Argument &a : entry->args())
    args.push_back(&a);
  caller.CreateCall(segment, args);
  return segment;
}

/// The module's kernel functions, one per distinct code. A kernel function
/// reads where its buffers are from its launch's bindings (FunctionEmitter::
/// Bindings), so the kernels of layers alike (a deep chain's, a model's
/// repeated blocks, an entry point's twin in another) have the same code:
/// each is compiled once, and the module grows with the model's distinct
/// layers, not its depth. Equal means equal to LLVM's FunctionComparator,
/// the test MergeFunctions uses: same attributes, types, instructions,
/// constants and referenced globals.
class KernelCache {
public:
  /// An earlier function with `f`'s code, or `f` (then remembered).
  llvm::Function *intern(llvm::Function *f) {
    std::vector<llvm::Function *> &alike = byHash_[llvm::StructuralHash(*f, /*DetailedHash=*/true)];
    for (llvm::Function *g : alike)
      if (llvm::FunctionComparator(f, g, &globals_).compare() == 0)
        return g;
    alike.push_back(f);
    return f;
  }

private:
  llvm::GlobalNumberState globals_;
  std::unordered_map<llvm::IRHash, std::vector<llvm::Function *>> byHash_;
};

class FunctionEmitter {
public:
  /// `layout`: the persistent layout, by which Gradients entries place each
  /// parameter's gradient. `f64`: compute in double (the twin --gradcheck
  /// compares against), with `plan` made for 8-byte elements.
  FunctionEmitter(llvm::Module &m, KernelCache &kernels, const EntryPoint &entry,
                  const MemoryPlan &plan, std::string symbol, EntryKind kind,
                  const TargetInfo &target, const PersistentLayout &layout, bool f64 = false)
      : m_(m), kernels_(kernels), entry_(entry), plan_(plan), symbol_(std::move(symbol)),
        kind_(kind), target_(target), layout_(layout), b_(m.getContext()),
        elem_(f64 ? b_.getDoubleTy() : b_.getFloatTy()) {}

  /// With --profile at run time, the entry point reports where each kernel
  /// starts and where the step ends (netc_rt_profile_mark of runtime.h).
  FunctionEmitter &profiled() {
    profiled_ = true;
    return *this;
  }

  // Internal: the descriptor is the only way in.
  llvm::Function *emit() {
    llvm::LLVMContext &c = m_.getContext();
    auto *ptr = llvm::PointerType::getUnqual(c);
    std::vector<llvm::Type *> params = {ptr, ptr, ptr, b_.getInt64Ty(), ptr};
    if (kind_ == EntryKind::Gradients || kind_ == EntryKind::ShardGradients)
      params.push_back(ptr); // T *grads: each parameter's gradient at its offset
    if (kind_ == EntryKind::ShardGradients)
      params.insert(params.end(), {ptr, ptr}); // ready, context
    bool returnsLoss = kind_ != EntryKind::Predict && kind_ != EntryKind::Update;
    llvm::Type *result = returnsLoss ? elem_ : b_.getVoidTy();
    auto *type = llvm::FunctionType::get(result, params, false);
    auto *fn = llvm::Function::Create(type, llvm::Function::InternalLinkage, symbol_, m_);
    const char *names[] = {"persist", "inputs", "scratch", "n",
                           kind_ == EntryKind::Predict ? "out" : "hparams"};
    for (unsigned i = 0; i < 5; ++i)
      fn->getArg(i)->setName(names[i]);
    if (kind_ == EntryKind::Gradients || kind_ == EntryKind::ShardGradients)
      fn->getArg(5)->setName("grads");
    // The memory blocks are separate allocations.
    for (unsigned i : {0u, 2u})
      fn->addParamAttr(i, llvm::Attribute::NoAlias);
    fn->addFnAttr(llvm::Attribute::NoUnwind);
    setOptimization(fn, /*tiny=*/false);
    b_.SetInsertPoint(llvm::BasicBlock::Create(c, "entry", fn));
    llvm::FastMathFlags fmf;
    fmf.setAllowContract(true);
    b_.setFastMathFlags(fmf);

    EmitContext ctx = entryContext(fn);
    if (kind_ == EntryKind::ShardGradients) {
      ready_ = gradientReadyKernels(entry_.graph, entry_.schedule, layout_.params.size());
      handOver(ctx, ready_, -1);
    }
    auto kernels = [&](EmitContext &inner, size_t first, size_t last) {
      emitKernels(inner, first, last);
    };
    size_t count = entry_.schedule.kernels.size();
    if (kind_ == EntryKind::Gradients) {
      // Null grads: the loss alone, returned once the kernel computing it
      // has run (--gradcheck's finite differences: the backward pass, two
      // thirds of the work, skipped).
      ValueId loss = entry_.graph.output("loss");
      size_t done = static_cast<size_t>(entry_.schedule.kernelOf[static_cast<size_t>(loss)] + 1);
      inSegments(fn, ctx, 0, done, kernels);
      llvm::LLVMContext &c = m_.getContext();
      auto *only = llvm::BasicBlock::Create(c, "loss_only", fn);
      auto *rest = llvm::BasicBlock::Create(c, "backward", fn);
      b_.CreateCondBr(b_.CreateIsNull(fn->getArg(5)), only, rest);
      b_.SetInsertPoint(only);
      b_.CreateRet(ctx.load(loss, b_.getInt64(0)));
      b_.SetInsertPoint(rest);
      inSegments(fn, ctx, done, count, kernels);
    } else {
      inSegments(fn, ctx, 0, count, kernels);
    }
    profileMark(-1);
    if (kind_ == EntryKind::Predict) {
      copyPrediction(ctx, fn->getArg(4));
      b_.CreateRetVoid();
      return fn;
    }
    if (kind_ == EntryKind::Update) {
      b_.CreateRetVoid();
      return fn;
    }
    if (kind_ == EntryKind::Gradients)
      copyGradients(ctx, fn);
    ValueId loss = entry_.graph.output("loss");
    assert(loss != kNoValue && "every entry point but predict computes the loss");
    b_.CreateRet(ctx.load(loss, b_.getInt64(0)));
    return fn;
  }

private:
  /// The most kernels (or gradient copies) one function emits; a deep
  /// model's entry point calls segments (addSegment) of this many.
  static constexpr size_t kSegmentKernels = 128;

  /// `fn`'s context, and the arguments in one struct (args_) for the
  /// functions of chunked kernels (predict has no hyperparameters: its slot
  /// stays null; the bindings, field 5, are stored at each launch).
  EmitContext entryContext(llvm::Function *fn) {
    llvm::Value *hparams = kind_ == EntryKind::Predict
                               ? llvm::ConstantPointerNull::get(b_.getPtrTy())
                               : static_cast<llvm::Value *>(fn->getArg(4));
    args_ = b_.CreateAlloca(argsType(), nullptr, "args");
    llvm::Value *fields[] = {fn->getArg(0), fn->getArg(1), fn->getArg(2), fn->getArg(3), hparams};
    for (unsigned i = 0; i < 5; ++i)
      b_.CreateStore(fields[i], b_.CreateStructGEP(argsType(), args_, i));
    return context(b_, fn, fn->getArg(0), fn->getArg(1), fn->getArg(2), fn->getArg(3), hparams);
  }

  /// Kernels [first, last) at the builder's insertion point.
  void emitKernels(EmitContext &ctx, size_t first, size_t last) {
    for (size_t i = first; i < last; ++i) {
      if (entry_.schedule.kernels[i].kind != Kernel::Kind::View)
        profileMark(static_cast<int32_t>(i));
      emitKernel(ctx, entry_.schedule.kernels[i], i);
      if (kind_ == EntryKind::ShardGradients)
        handOver(ctx, ready_, static_cast<int>(i));
    }
  }

  /// emit(ctx, first, last) for [begin, end): at the builder's insertion
  /// point in `entry`, or for more than kSegmentKernels, in segments of that
  /// many (`<entry>.segment<i>`), each with its own context.
  void inSegments(llvm::Function *entry, EmitContext &ctx, size_t begin, size_t end,
                  const std::function<void(EmitContext &, size_t, size_t)> &emit) {
    if (end - begin <= kSegmentKernels)
      return emit(ctx, begin, end);
    for (size_t first = begin; first < end; first += kSegmentKernels) {
      llvm::Function *segment =
          addSegment(entry, b_, symbol_ + ".segment" + std::to_string(segments_++));
      llvm::IRBuilderBase::InsertPoint caller = b_.saveIP();
      llvm::Value *callerArgs = args_;
      b_.SetInsertPoint(llvm::BasicBlock::Create(m_.getContext(), "entry", segment));
      EmitContext inner = entryContext(segment);
      emit(inner, first, std::min(end, first + kSegmentKernels));
      b_.CreateRetVoid();
      b_.restoreIP(caller);
      args_ = callerArgs;
    }
  }

  /// if (netc_rt_profiling) netc_rt_profile_mark(kernel): a load and a
  /// branch per kernel when profiling is off.
  void profileMark(int32_t kernel) {
    if (!profiled_)
      return;
    llvm::LLVMContext &c = m_.getContext();
    llvm::Function *fn = b_.GetInsertBlock()->getParent();
    auto *flag = m_.getOrInsertGlobal("netc_rt_profiling", b_.getInt32Ty());
    auto *on = b_.CreateICmpNE(b_.CreateLoad(b_.getInt32Ty(), flag, "profiling"), b_.getInt32(0));
    auto *mark = llvm::BasicBlock::Create(c, "profile", fn);
    auto *next = llvm::BasicBlock::Create(c, "kernel", fn);
    b_.CreateCondBr(on, mark, next);
    b_.SetInsertPoint(mark);
    auto callee = m_.getOrInsertFunction(
        "netc_rt_profile_mark",
        llvm::FunctionType::get(b_.getVoidTy(), {b_.getInt32Ty()}, false));
    b_.CreateCall(callee, {b_.getInt32(kernel)});
    b_.CreateBr(next);
    b_.SetInsertPoint(next);
  }

  void emitKernel(EmitContext &ctx, const Kernel &k, size_t index) {
    switch (k.kind) {
    case Kernel::Kind::Loop:
      if (loopKernelSplits(entry_.graph, k))
        emitChunked(ctx, k, index, loopChunkCount, emitLoopChunk);
      else
        emitCalled(ctx, k, index, emitLoopKernel);
      break;
    case Kernel::Kind::MatMul:
      emitChunked(ctx, k, index, matMulChunkCount, emitMatMulChunk);
      break;
    case Kernel::Kind::Rows:
      emitCalled(ctx, k, index, emitRowsKernel);
      break;
    case Kernel::Kind::Gather:
      emitCalled(ctx, k, index, emitGatherKernel);
      break;
    case Kernel::Kind::Stack:
      emitCalled(ctx, k, index, emitStackKernel);
      break;
    case Kernel::Kind::Window:
      emitChunked(ctx, k, index, windowChunkCount, emitWindowChunk);
      break;
    case Kernel::Kind::Slice:
      emitCalled(ctx, k, index, emitSliceKernel);
      break;
    case Kernel::Kind::Layout:
      emitChunked(ctx, k, index, layoutChunkCount, emitLayoutChunk);
      break;
    case Kernel::Kind::Spectrum:
      emitChunked(ctx, k, index, spectrumChunkCount, emitSpectrumChunk);
      break;
    case Kernel::Kind::View:
      break;
    }
  }

  /// { persist, inputs, scratch, n, hparams, bindings }: bindings is the
  /// running kernel's table of offsets (Bindings).
  llvm::StructType *argsType() {
    auto *ptr = b_.getPtrTy();
    return llvm::StructType::get(m_.getContext(), {ptr, ptr, ptr, b_.getInt64Ty(), ptr, ptr});
  }

  /// Where a kernel function's buffers are: each address it uses is a base
  /// (persist, inputs, the arena, the batch region) plus an offset the
  /// function reads from slot k of its launch's table (i64 bindings[k],
  /// slots in the order of first use), not a constant in its code. Kernels
  /// that differ only in where their values live get the same code.
  struct Bindings {
    llvm::Value *table;           ///< i64 *: args field 5, or an argument
    std::vector<int64_t> offsets; ///< per slot: the value the table holds
    /// The next slot, holding `offset`, read in the entry block `b` is at.
    llvm::Value *slot(llvm::IRBuilder<> &b, int64_t offset) {
      auto k = static_cast<uint64_t>(offsets.size());
      offsets.push_back(offset);
      return b.CreateLoad(b.getInt64Ty(), b.CreateConstInBoundsGEP1_64(b.getInt64Ty(), table, k),
                          "bound");
    }
  };

  /// `bindings`: null for an entry point (addresses are constants).
  /// `batchRegion`: where per-batch buffers start (default: scratch + the
  /// plan's fixed bytes).
  EmitContext context(llvm::IRBuilder<> &b, llvm::Function *fn, llvm::Value *persist,
                      llvm::Value *inputs, llvm::Value *scratch, llvm::Value *n,
                      llvm::Value *hparams, std::shared_ptr<Bindings> bindings = nullptr,
                      llvm::Value *batchRegion = nullptr) {
    EmitContext ctx{b, fn, entry_.graph, entry_.schedule, plan_, n, hparams, {}, elem_};
    ctx.vectorBytes = target_.vectorBytes();
    ctx.vectorRegisters = target_.vectorRegisters();
    ctx.estimates = target_.updateEstimates();
    ctx.pointers.assign(entry_.graph.size(), nullptr);
    ctx.address = addresses(fn, persist, inputs, scratch, n, bindings, batchRegion);
    if (bindings)
      ctx.arenaOffset = [fn, bindings](int64_t offset) {
        llvm::IRBuilder<> b = atEntryEnd(fn);
        return bindings->slot(b, offset);
      };
    ctx.scratch = scratch;
    return ctx;
  }

  /// The constant table of a launch's offsets (null for none).
  llvm::Constant *bindingTable(const std::vector<int64_t> &offsets, const llvm::Twine &name) {
    if (offsets.empty())
      return llvm::ConstantPointerNull::get(b_.getPtrTy());
    std::vector<uint64_t> values(offsets.begin(), offsets.end());
    auto *data = llvm::ConstantDataArray::get(m_.getContext(), llvm::ArrayRef(values));
    auto *g = new llvm::GlobalVariable(m_, data->getType(), /*isConstant=*/true,
                                       llvm::GlobalValue::InternalLinkage, data, name);
    g->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
    return g;
  }

  using ChunkCount = llvm::Value *(*)(const EmitContext &, const Kernel &);
  using EmitChunk = void (*)(const EmitContext &, const Kernel &, llvm::Value *, llvm::Value *);

  /// A kernel's function, its buffers bound (Bindings), shared with every
  /// kernel of the same code (KernelCache); and this launch's bindings.
  struct KernelFunction {
    llvm::Function *fn;
    llvm::Constant *bindings;
  };

  // A kernel in one of two forms:
  //  - chunked: `void <entry>.kernel<i>(const args *, i64 chunk)` for
  //    netc_rt_parallel_for, the table in args (field 5);
  //  - called: `void <entry>.kernel<i>(persist, inputs, scratch,
  //    batch_region, n, hparams, bindings)`, called directly, never
  //    inlined, optimized as the entry point it would otherwise be inline
  //    in. The memory blocks (persist, the arena's fixed part, its batch
  //    region) are noalias arguments: LLVM knows what it knew inline (a sum
  //    accumulating in the fixed part is no batch value, so it stays in a
  //    register and vectorizes) and makes the same code.
  // `emit(inner, chunk)` emits the body (chunk: null when called).
  KernelFunction
  kernelFunction(const Kernel &k, size_t index, bool called,
                 const std::function<void(const EmitContext &, llvm::Value *)> &emit) {
    llvm::LLVMContext &c = m_.getContext();
    auto *ptr = b_.getPtrTy();
    auto *i64 = b_.getInt64Ty();
    auto *type =
        called ? llvm::FunctionType::get(b_.getVoidTy(), {ptr, ptr, ptr, ptr, i64, ptr, ptr}, false)
               : llvm::FunctionType::get(b_.getVoidTy(), {ptr, i64}, false);
    auto *body = llvm::Function::Create(type, llvm::Function::InternalLinkage,
                                        symbol_ + ".kernel" + std::to_string(index), m_);
    body->addFnAttr(llvm::Attribute::NoUnwind);
    setOptimization(body, !called && tinyKernel(k));
    if (called) {
      // Not specialized either (IPSCCP clones a function per constant
      // argument, the bindings): one copy, and the same code however the
      // module is cut into parts (Parallel.h), so on any number of cores.
      body->addFnAttr(llvm::Attribute::NoInline);
      body->addFnAttr(llvm::Attribute::NoDuplicate);
      for (unsigned i : {0u, 2u, 3u})
        body->addParamAttr(i, llvm::Attribute::NoAlias);
    }
    llvm::IRBuilder<> ib(llvm::BasicBlock::Create(c, "entry", body));
    ib.setFastMathFlags(b_.getFastMathFlags());
    llvm::Value *persist, *inputs, *scratch, *n, *hparams, *table, *batchRegion = nullptr;
    if (called) {
      persist = body->getArg(0), inputs = body->getArg(1), scratch = body->getArg(2);
      batchRegion = body->getArg(3), n = body->getArg(4), hparams = body->getArg(5);
      table = body->getArg(6);
    } else {
      llvm::Value *args = body->getArg(0);
      auto field = [&](unsigned i) {
        return ib.CreateLoad(argsType()->getElementType(i),
                             ib.CreateStructGEP(argsType(), args, i));
      };
      persist = field(0), inputs = field(1), scratch = field(2), n = field(3), hparams = field(4);
      table = field(5);
      table->setName("bindings");
    }
    auto bindings = std::make_shared<Bindings>(Bindings{table, {}});
    EmitContext inner =
        context(ib, body, persist, inputs, scratch, n, hparams, bindings, batchRegion);
    emit(inner, called ? nullptr : body->getArg(1));
    ib.CreateRetVoid();
    llvm::Constant *launch = bindingTable(bindings->offsets, body->getName() + ".bindings");
    if (llvm::Function *same = kernels_.intern(body); same != body) {
      body->eraseFromParent();
      body = same;
    }
    return {body, launch};
  }

  // A kernel that runs whole on the calling thread.
  void emitCalled(const EmitContext &ctx, const Kernel &k, size_t index,
                  void (*emitKernel)(const EmitContext &, const Kernel &)) {
    KernelFunction f =
        kernelFunction(k, index, /*called=*/true,
                       [&](const EmitContext &inner, llvm::Value *) { emitKernel(inner, k); });
    llvm::Function *fn = b_.GetInsertBlock()->getParent();
    llvm::Value *batchRegion = b_.CreateInBoundsGEP(
        b_.getInt8Ty(), ctx.scratch, b_.getInt64(static_cast<uint64_t>(plan_.fixedBytes)));
    b_.CreateCall(f.fn, {fn->getArg(0), fn->getArg(1), ctx.scratch, batchRegion, ctx.batch,
                         ctx.hparams, f.bindings});
  }

  // A kernel run through netc_rt_parallel_for: the runtime's threads take
  // chunks.
  void emitChunked(const EmitContext &ctx, const Kernel &k, size_t index, ChunkCount count,
                   EmitChunk emitChunk) {
    auto *ptr = b_.getPtrTy();
    KernelFunction f = kernelFunction(k, index, /*called=*/false,
                                      [&](const EmitContext &inner, llvm::Value *chunk) {
                                        emitChunk(inner, k, chunk, count(inner, k));
                                      });
    b_.CreateStore(f.bindings, b_.CreateStructGEP(argsType(), args_, 5));
    auto parallelFor = m_.getOrInsertFunction(
        "netc_rt_parallel_for",
        llvm::FunctionType::get(b_.getVoidTy(), {ptr, ptr, b_.getInt64Ty()}, false));
    llvm::Value *chunks = count(ctx, k);
    if (k.kind == Kernel::Kind::Window)
      emitWindowPrepare(ctx, k);
    b_.CreateCall(parallelFor, {f.fn, args_, chunks});
    if (k.kind == Kernel::Kind::Window)
      emitWindowFinish(ctx, k, chunks);
    if (k.kind == Kernel::Kind::Loop)
      emitLoopFinish(ctx, k, chunks);
  }

  /// How hard LLVM works on a function of this entry point. The gradient
  /// entry points serve --gradcheck and --grad-stats, not training:
  /// optimized for size, they cost a fraction of the compile time. A kernel
  /// with a handful of values per example (`tiny`) gains nothing from
  /// vectorized, unrolled loops with runtime alias checks, and compiling
  /// them took half the time of a deep chain of small layers. The probe runs
  /// only to diagnose a step gone wrong: not optimized at all.
  void setOptimization(llvm::Function *f, bool tiny) const {
    if (kind_ == EntryKind::Probe) {
      f->addFnAttr(llvm::Attribute::OptimizeNone);
      f->addFnAttr(llvm::Attribute::NoInline);
      return;
    }
    if (kind_ == EntryKind::Gradients || tiny)
      f->addFnAttr(llvm::Attribute::OptimizeForSize);
    if (tiny)
      f->addFnAttr(llvm::Attribute::MinSize);
  }

  /// A loop or product kernel with at most 64 values per example.
  bool tinyKernel(const Kernel &k) const {
    if (k.kind != Kernel::Kind::Loop && k.kind != Kernel::Kind::MatMul)
      return false;
    const Shape &s = k.kind == Kernel::Kind::Loop ? k.domain : entry_.graph.shape(k.nodes.front());
    return s.constNumel() <= 64;
  }

  // Output "prediction" to out, n examples of its per-example floats.
  void copyPrediction(const EmitContext &ctx, llvm::Value *out) {
    ValueId p = entry_.graph.output("prediction");
    assert(p != kNoValue && "predict computes the prediction");
    const Shape &shape = entry_.graph.shape(p);
    llvm::Value *count = ctx.i64(shape.constNumel());
    if (shape.hasBatch())
      count = b_.CreateMul(count, ctx.batch);
    ctx.loop(count, [&](llvm::Value *e) {
      llvm::Value *at = shape.rank() == 0 ? ctx.i64(0) : e;
      b_.CreateStore(ctx.load(p, at), b_.CreateInBoundsGEP(elem_, out, e));
    });
  }

  // Output "grad <i>" goes to grads + offset of parameter i.
  void copyGradients(EmitContext &ctx, llvm::Function *entry) {
    inSegments(entry, ctx, 0, layout_.params.size(),
               [&](EmitContext &inner, size_t first, size_t last) {
                 for (size_t i = first; i < last; ++i)
                   copyGradient(inner, inner.fn->getArg(5), i);
               });
  }

  void copyGradient(const EmitContext &ctx, llvm::Value *grads, size_t i) {
    const auto &p = layout_.params[i];
    ValueId g = entry_.graph.output("grad " + std::to_string(i));
    llvm::Value *base =
        b_.CreateConstInBoundsGEP1_64(elem_, grads, static_cast<uint64_t>(p.offset));
    ctx.loop(
        ctx.i64(p.shape.constNumel()),
        [&](llvm::Value *e) {
          // An inline scalar (a constant zero gradient) is the same everywhere.
          llvm::Value *at = entry_.graph.shape(g).rank() == 0 ? ctx.i64(0) : e;
          b_.CreateStore(ctx.load(g, at), b_.CreateInBoundsGEP(elem_, base, e));
        },
        "i", /*rolled=*/true);
  }

  // shard_gradients, after kernel `kernel` (-1: before the first): the
  // gradients complete there go to grads, and each is handed to the
  // runtime (if (ready) ready(context, i)), which may start sending it
  // while the later kernels run.
  void handOver(const EmitContext &ctx, const std::vector<int> &ready, int kernel) {
    llvm::Function *fn = b_.GetInsertBlock()->getParent();
    llvm::Value *callback = fn->getArg(6), *context = fn->getArg(7);
    for (size_t i = 0; i < ready.size(); ++i) {
      if (ready[i] != kernel)
        continue;
      copyGradient(ctx, fn->getArg(5), i);
      llvm::LLVMContext &c = m_.getContext();
      auto *call = llvm::BasicBlock::Create(c, "ready", fn);
      auto *next = llvm::BasicBlock::Create(c, "handed", fn);
      b_.CreateCondBr(b_.CreateIsNotNull(callback), call, next);
      b_.SetInsertPoint(call);
      auto *type = llvm::FunctionType::get(b_.getVoidTy(), {b_.getPtrTy(), b_.getInt32Ty()}, false);
      b_.CreateCall(type, callback, {context, b_.getInt32(static_cast<uint32_t>(i))});
      b_.CreateBr(next);
      b_.SetInsertPoint(next);
    }
  }

  // Base addresses are computed on first use, in the function's entry
  // block (so they dominate every use): a kernel function computes only the
  // ones it touches. Computing all of them in every kernel made the IR, and
  // compile time, grow with kernels x values (quadratic in the model).
  // In a kernel function (`bindings`), the offsets are the launch's
  // bindings instead of constants.
  std::function<llvm::Value *(ValueId)>
  addresses(llvm::Function *fn, llvm::Value *persist, llvm::Value *inputs, llvm::Value *scratch,
            llvm::Value *batch, std::shared_ptr<Bindings> bindings, llvm::Value *batchRegion) {
    struct Bases {
      llvm::Value *batchRegion = nullptr; ///< scratch + fixed part, scaled by Npad
      llvm::Value *npad = nullptr;
    };
    auto bases = std::make_shared<Bases>();
    bases->batchRegion = batchRegion;
    return [this, fn, persist, inputs, scratch, batch, bases,
            bindings](ValueId v) -> llvm::Value * {
      const Buffer &buf = plan_.buffers[static_cast<size_t>(v)];
      if (buf.region == Buffer::Region::None)
        return nullptr;
      llvm::IRBuilder<> b = atEntryEnd(fn);
      auto off = static_cast<uint64_t>(buf.offset);
      // base + offset elements of `type`
      auto at = [&](llvm::Type *type, llvm::Value *base) -> llvm::Value * {
        if (!bindings)
          return b.CreateConstInBoundsGEP1_64(type, base, off);
        return b.CreateInBoundsGEP(type, base, bindings->slot(b, buf.offset));
      };
      switch (buf.region) {
      case Buffer::Region::Persistent:
        return at(elem_, persist);
      case Buffer::Region::Input:
        return b.CreateLoad(b.getPtrTy(), at(b.getPtrTy(), inputs));
      case Buffer::Region::Fixed:
        return at(b.getInt8Ty(), scratch);
      case Buffer::Region::Table:
        return table(entry_.graph.node(v));
      case Buffer::Region::Batch:
        if (!bases->npad) {
          // Npad = N rounded up to NETC_BATCH_PAD: keeps per-batch buffers aligned.
          static_assert((NETC_BATCH_PAD & (NETC_BATCH_PAD - 1)) == 0, "a power of two");
          bases->npad = b.CreateAnd(b.CreateAdd(batch, b.getInt64(NETC_BATCH_PAD - 1)),
                                    b.getInt64(~int64_t(NETC_BATCH_PAD - 1)));
          if (!bases->batchRegion)
            bases->batchRegion = b.CreateInBoundsGEP(
                b.getInt8Ty(), scratch, b.getInt64(static_cast<uint64_t>(plan_.fixedBytes)),
                "batch_region");
        }
        return b.CreateInBoundsGEP(
            b.getInt8Ty(), bases->batchRegion,
            b.CreateMul(bindings ? bindings->slot(b, buf.offset) : b.getInt64(off), bases->npad));
      case Buffer::Region::None:
        break;
      }
      return nullptr;
    };
  }

  /// A table as a constant global of the element type, one per name and
  /// type in the module (entry points share it).
  llvm::Constant *table(const Node &n) {
    const std::vector<double> &v = *n.attrs.table;
    return constantArray(
        m_, "netc.table." + n.attrs.name, elem_,
        [&](int64_t i) { return v[static_cast<size_t>(i)]; }, static_cast<int64_t>(v.size()));
  }

  llvm::Module &m_;
  KernelCache &kernels_;
  const EntryPoint &entry_;
  const MemoryPlan &plan_;
  std::string symbol_;
  EntryKind kind_;
  const TargetInfo &target_;
  const PersistentLayout &layout_;
  bool profiled_ = false;
  int segments_ = 0;
  std::vector<int> ready_; ///< shard_gradients: per parameter, the kernel completing its gradient
  llvm::IRBuilder<> b_;
  llvm::Type *elem_;
  llvm::Value *args_ = nullptr;
};

// void init(float *persist, uint64_t seed): every parameter from its
// initializer (counter-based RNG: element i of parameter p draws from
// stream p, index i), every buffer to its initial value, every optimizer
// state tensor to zero.
llvm::Function *emitInit(llvm::Module &m, const CompiledModel &cm, const std::string &symbol) {
  llvm::LLVMContext &c = m.getContext();
  llvm::IRBuilder<> b(c);
  auto *ptr = llvm::PointerType::getUnqual(c);
  auto *fn =
      llvm::Function::Create(llvm::FunctionType::get(b.getVoidTy(), {ptr, b.getInt64Ty()}, false),
                             llvm::Function::InternalLinkage, symbol, m);
  fn->getArg(0)->setName("persist");
  fn->getArg(1)->setName("seed");
  b.SetInsertPoint(llvm::BasicBlock::Create(c, "entry", fn));
  auto *rngType = llvm::FunctionType::get(b.getFloatTy(),
                                          {b.getInt64Ty(), b.getInt64Ty(), b.getInt64Ty()}, false);
  auto normal = m.getOrInsertFunction("netc_rt_normal", rngType);
  auto uniform = m.getOrInsertFunction("netc_rt_uniform", rngType);

  Graph empty;
  Schedule schedule;
  MemoryPlan plan;
  EmitContext ctx{b, fn, empty, schedule, plan, nullptr, nullptr, {}, b.getFloatTy()};
  // A deep model's fills go in segments (addSegment) of kFills fills each.
  constexpr size_t kFills = 128;
  const bool segmented =
      cm.model.params.size() + cm.model.buffers.size() + cm.persistent.states.size() > kFills;
  llvm::IRBuilder<> caller(&fn->getEntryBlock());
  size_t fills = 0;
  auto fill = [&](int64_t offset, const Shape &shape, auto value) {
    if (segmented && fills++ % kFills == 0) {
      if (ctx.fn != fn)
        b.CreateRetVoid();
      ctx.fn = addSegment(fn, caller, symbol + ".segment" + std::to_string(fills / kFills));
      b.SetInsertPoint(llvm::BasicBlock::Create(c, "entry", ctx.fn));
    }
    llvm::Value *base = b.CreateConstInBoundsGEP1_64(b.getFloatTy(), ctx.fn->getArg(0),
                                                     static_cast<uint64_t>(offset));
    ctx.loop(
        b.getInt64(static_cast<uint64_t>(shape.constNumel())),
        [&](llvm::Value *i) {
          b.CreateStore(value(i), b.CreateInBoundsGEP(b.getFloatTy(), base, i));
        },
        "i", /*rolled=*/true);
  };
  for (size_t p = 0; p < cm.model.params.size(); ++p) {
    const InitSpec init = cm.model.params[p].init;
    const auto &entry = cm.persistent.params[p];
    llvm::Value *stream = b.getInt64(p);
    auto a = llvm::ConstantFP::get(b.getFloatTy(), init.a);
    // a + scale * draw, without the no-op parts (x + 0.0 does not fold).
    auto affine = [&](llvm::Value *draw, double scale) {
      llvm::Value *v = draw;
      if (scale != 1.0)
        v = b.CreateFMul(llvm::ConstantFP::get(b.getFloatTy(), scale), v);
      return init.a == 0.0 ? v : b.CreateFAdd(a, v);
    };
    fill(entry.offset, entry.shape, [&](llvm::Value *i) -> llvm::Value * {
      switch (init.kind) {
      case InitSpec::Kind::Constant:
        return a;
      case InitSpec::Kind::Normal:
        return affine(b.CreateCall(normal, {ctx.fn->getArg(1), stream, i}), init.b);
      case InitSpec::Kind::Uniform:
        return affine(b.CreateCall(uniform, {ctx.fn->getArg(1), stream, i}), init.b - init.a);
      }
      return a;
    });
  }
  for (size_t k = 0; k < cm.model.buffers.size(); ++k)
    fill(cm.persistent.buffers[k].offset, cm.persistent.buffers[k].shape, [&](llvm::Value *) {
      return llvm::ConstantFP::get(b.getFloatTy(), cm.model.buffers[k].init);
    });
  for (const auto &s : cm.persistent.states)
    fill(s.offset, s.shape,
         [&](llvm::Value *) { return llvm::ConstantFP::get(b.getFloatTy(), 0.0); });
  b.CreateRetVoid();
  if (segmented)
    caller.CreateRetVoid();
  return fn;
}

/// The fewest examples a training step takes: batch norm over [N, C]
/// normalises each channel by N values, so it needs two at least (PyTorch
/// refuses one too).
int64_t minimumBatch(const Model &m) {
  for (const Node &n : m.graph.nodes())
    if (n.op == Op::BatchNorm &&
        m.graph.shape(n.inputs[0]).constNumel() == m.graph.shape(n.inputs[0]).dims[1])
      return 2;
  return 1;
}

/// The model descriptor (struct netc_model of runtime.h), field by field.
llvm::StructType *descriptorType(llvm::LLVMContext &c) {
  auto *ptr = llvm::PointerType::getUnqual(c);
  auto *i64 = llvm::Type::getInt64Ty(c);
  auto *i32 = llvm::Type::getInt32Ty(c);
  return llvm::StructType::get(c, {i32, ptr, ptr, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr,
                                   i32, i32, i32, i32, ptr, ptr, ptr, i64, ptr, ptr, ptr});
}

llvm::Constant *cString(llvm::Module &m, const std::string &text, const char *name) {
  auto *data = llvm::ConstantDataArray::getString(m.getContext(), text, /*AddNull=*/true);
  auto *global = new llvm::GlobalVariable(m, data->getType(), /*isConstant=*/true,
                                          llvm::GlobalValue::PrivateLinkage, data, name);
  global->setAlignment(llvm::Align(1));
  global->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
  return global;
}

/// A private constant array of `rows` of one struct type (a table of
/// runtime.h); a null pointer when there are none.
llvm::Constant *cTable(llvm::Module &m, llvm::StructType *row,
                       const std::vector<llvm::Constant *> &rows, const char *name) {
  if (rows.empty())
    return llvm::ConstantPointerNull::get(llvm::PointerType::getUnqual(m.getContext()));
  auto *type = llvm::ArrayType::get(row, rows.size());
  auto *global = new llvm::GlobalVariable(m, type, /*isConstant=*/true,
                                          llvm::GlobalValue::PrivateLinkage,
                                          llvm::ConstantArray::get(type, rows), name);
  global->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
  return global;
}

llvm::Constant *cShape(llvm::Module &m, const Shape &shape) {
  std::vector<uint64_t> dims(shape.dims.begin(), shape.dims.end());
  auto *data = llvm::ConstantDataArray::get(m.getContext(), dims);
  auto *global = new llvm::GlobalVariable(m, data->getType(), /*isConstant=*/true,
                                          llvm::GlobalValue::PrivateLinkage, data, "shape");
  global->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
  return global;
}

/// runtime.h's tables of the persistent tensors, the fields and the
/// hparams: what the description says of them, as C data for the C
/// library (netc.h), which reads no JSON. Appended to `fields`.
void emitCTables(llvm::Module &m, const CompiledModel &cm, const llvm::DataLayout &layout,
                 std::vector<llvm::Constant *> &fields) {
  llvm::LLVMContext &c = m.getContext();
  auto *ptr = llvm::PointerType::getUnqual(c);
  auto *i32t = llvm::Type::getInt32Ty(c);
  auto *i64t = llvm::Type::getInt64Ty(c);
  auto i32 = [&](int64_t v) { return llvm::ConstantInt::get(i32t, static_cast<uint64_t>(v)); };
  auto i64 = [&](int64_t v) { return llvm::ConstantInt::get(i64t, static_cast<uint64_t>(v)); };
  const Model &model = cm.model;

  auto *tensorRow = llvm::StructType::get(c, {ptr, ptr, i32t, i32t, i64t, i64t, i32t});
  std::vector<llvm::Constant *> tensors;
  auto tensor = [&](const std::string &name, const Shape &shape, int kind, int64_t offset,
                    bool integer) {
    tensors.push_back(llvm::ConstantStruct::get(
        tensorRow, {cString(m, name, "tensor_name"), cShape(m, shape), i32(shape.rank()), i32(kind),
                    i64(offset), i64(shape.constNumel()), i32(integer)}));
  };
  for (size_t i = 0; i < model.params.size(); ++i)
    tensor(model.params[i].name, model.params[i].shape, NETC_PARAMETER,
           cm.persistent.params[i].offset, false);
  for (size_t i = 0; i < model.buffers.size(); ++i)
    tensor(model.buffers[i].name, model.buffers[i].shape, NETC_BUFFER,
           cm.persistent.buffers[i].offset, model.buffers[i].integer);
  for (const auto &s : cm.persistent.states)
    tensor(s.name, s.shape, NETC_STATE, s.offset, false);

  auto *fieldRow = llvm::StructType::get(c, {ptr, ptr, i32t, i32t, i32t, i64t});
  std::vector<llvm::Constant *> dataFields;
  for (const auto &f : model.data.fields)
    dataFields.push_back(llvm::ConstantStruct::get(
        fieldRow, {cString(m, f.name, "field_name"), cShape(m, f.shape), i32(f.shape.rank()),
                   i32(f.role == "input" ? NETC_INPUT : NETC_TARGET),
                   i32(f.dtype == DType::I64), i64(f.shape.constNumel())}));

  // hparams in index order (Pipeline.h: hparams), as the description lists them.
  auto *hparamRow = llvm::StructType::get(c, {i32t, i32t, llvm::Type::getDoubleTy(c)});
  auto hparam = [&](int kind, int offset, double value) {
    return llvm::ConstantStruct::get(
        hparamRow, {i32(kind), i32(offset), llvm::ConstantFP::get(c, llvm::APFloat(value))});
  };
  std::vector<llvm::Constant *> hparams;
  for (const HParam &h : netc::hparams(model))
    hparams.push_back(hparam(h.kind, h.offset, h.value));

  assert(layout.getTypeAllocSize(tensorRow) == sizeof(netc_tensor) &&
         layout.getTypeAllocSize(fieldRow) == sizeof(netc_field) &&
         layout.getTypeAllocSize(hparamRow) == sizeof(netc_hparam) &&
         "the tables' LLVM types lay out as runtime.h's structs");
  fields.insert(fields.end(),
                {i32(static_cast<int64_t>(tensors.size())),
                 i32(static_cast<int64_t>(dataFields.size())),
                 i32(static_cast<int64_t>(hparams.size())), i32(minimumBatch(model)),
                 cTable(m, tensorRow, tensors, "tensors"), cTable(m, fieldRow, dataFields, "fields"),
                 cTable(m, hparamRow, hparams, "hparams"), i64(static_cast<int64_t>(model.train.seed))});
}

// void apply_update(float *persist, const float *grads, char *scratch,
//                   const float *hparams)
// (runtime.h): `update` (EntryKind::Update) takes the gradients as its
// inputs, one pointer per parameter: grads + the parameter's offset.
llvm::Function *emitApplyUpdate(llvm::Module &m, llvm::Function *update,
                                const PersistentLayout &layout, const std::string &symbol) {
  llvm::LLVMContext &c = m.getContext();
  llvm::IRBuilder<> b(c);
  auto *ptr = llvm::PointerType::getUnqual(c);
  auto *type = llvm::FunctionType::get(b.getVoidTy(), {ptr, ptr, ptr, ptr}, false);
  auto *fn = llvm::Function::Create(type, llvm::Function::InternalLinkage, symbol, m);
  fn->addFnAttr(llvm::Attribute::NoUnwind);
  b.SetInsertPoint(llvm::BasicBlock::Create(c, "entry", fn));
  auto count = static_cast<uint64_t>(std::max<size_t>(layout.params.size(), 1));
  llvm::Value *grads = b.CreateAlloca(ptr, b.getInt64(count), "grads");
  for (size_t i = 0; i < layout.params.size(); ++i)
    b.CreateStore(b.CreateConstInBoundsGEP1_64(b.getFloatTy(), fn->getArg(1),
                                               static_cast<uint64_t>(layout.params[i].offset)),
                  b.CreateConstInBoundsGEP1_64(ptr, grads, i));
  b.CreateCall(update, {fn->getArg(0), grads, fn->getArg(2), b.getInt64(1), fn->getArg(3)});
  b.CreateRetVoid();
  return fn;
}

// int main(int argc, char **argv) { return netc_main(&netc_model_<name>, argc, argv); }
// (netc_main_distributed for a --distributed model: the MPI runtime's)
void emitMain(llvm::Module &m, llvm::GlobalVariable *descriptor, bool distributed) {
  llvm::LLVMContext &c = m.getContext();
  llvm::IRBuilder<> b(c);
  auto *ptr = llvm::PointerType::getUnqual(c);
  auto *type = llvm::FunctionType::get(b.getInt32Ty(), {b.getInt32Ty(), ptr}, false);
  auto *fn = llvm::Function::Create(type, llvm::Function::ExternalLinkage, "main", m);
  auto trainer = m.getOrInsertFunction(
      distributed ? "netc_main_distributed" : "netc_main",
      llvm::FunctionType::get(b.getInt32Ty(), {ptr, b.getInt32Ty(), ptr}, false));
  b.SetInsertPoint(llvm::BasicBlock::Create(c, "entry", fn));
  b.CreateRet(b.CreateCall(trainer, {descriptor, fn->getArg(0), fn->getArg(1)}));
}

} // namespace

std::string modelSymbol(const std::string &modelName) {
  std::string id;
  for (char ch : modelName)
    id += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return "netc_model_" + id;
}

/// Where `entry` leaves its output `name` once it returns: in scratch
/// (scratch + fixed + per_npad * Npad bytes), in the persistent block, in
/// an input, or a constant; with its shape.
nlohmann::json outputLocation(const EntryPoint &entry, const std::string &name) {
  ValueId v = entry.graph.output(name);
  assert(v != kNoValue && "the entry point has this output");
  const Node &n = entry.graph.node(v);
  const Buffer &b = entry.plan.buffers[static_cast<size_t>(v)];
  nlohmann::json out = {{"shape", shapeJson(n.shape)}};
  switch (b.region) {
  case Buffer::Region::Batch:
    out.update({{"region", "scratch"}, {"fixed", entry.plan.fixedBytes}, {"per_npad", b.offset}});
    break;
  case Buffer::Region::Fixed:
    out.update({{"region", "scratch"}, {"fixed", b.offset}, {"per_npad", 0}});
    break;
  case Buffer::Region::Persistent:
    out.update({{"region", "persist"}, {"offset", b.offset}});
    break;
  case Buffer::Region::Input:
    out.update({{"region", "input"}, {"field", b.offset}});
    break;
  case Buffer::Region::Table: // sema never makes a table an output
  case Buffer::Region::None:
    assert(n.op == Op::Const && "an output not in memory is a constant");
    out.update({{"region", "const"}, {"value", n.attrs.value}});
    break;
  }
  return out;
}

ScratchSize scratchSize(const CompiledModel &cm) {
  ScratchSize s;
  // The gradients keep the branches they take to the end (for
  // --gradcheck): theirs is a scratch of its own (scratch_gradients).
  for (const EntryPoint *e :
       {&cm.trainStep, &cm.forward, &cm.predict, &cm.shardGradients, &cm.applyUpdate}) {
    s.fixedBytes = std::max(s.fixedBytes, e->plan.fixedBytes);
    s.batchBytesPerN = std::max(s.batchBytesPerN, e->plan.batchBytesPerN);
  }
  return s;
}

namespace {

/// A count that may grow with the batch: fixed + perN * N.
struct Count {
  double fixed = 0, perN = 0;
};

/// The elements of a shape (N counts as a factor of perN).
Count elements(const Shape &s) {
  double c = static_cast<double>(s.constNumel());
  return s.hasBatch() ? Count{0, c} : Count{c, 0};
}

/// a * b * k; a product of two batch-sized counts (no kernel has one)
/// counts per example.
Count product(Count a, Count b, double k) {
  double fa = a.fixed + a.perN, fb = b.fixed + b.perN;
  if (a.perN == 0 && b.perN == 0)
    return {a.fixed * b.fixed * k, 0};
  return {0, fa * fb * k};
}

/// Floating-point operations of one node: 2 per multiply-add of products
/// and convolutions, one per window element of pooling, one per element of
/// the largest of the node's value and its operands otherwise.
Count nodeFlops(const Graph &g, const Node &n) {
  auto shape = [&](size_t i) -> const Shape & { return g.shape(n.inputs[i]); };
  switch (n.op) {
  case Op::MatMul: {
    const Shape &a = shape(0);
    Shape inner;
    if (n.attrs.transA)
      inner.dims.assign(a.dims.begin(), a.dims.end() - 1);
    else
      inner.dims = {a.dims.back()};
    return product(elements(n.shape), elements(inner), 2);
  }
  case Op::Conv2d:            // x, w [O, C, KH, KW] -> y
  case Op::Conv2dGradInput: { // dy, w -> dx
    const Shape &w = shape(1), &y = n.op == Op::Conv2d ? n.shape : shape(0);
    return product(elements(y), {static_cast<double>(w.constNumel() / w.dims[0]), 0}, 2);
  }
  case Op::Conv2dGradWeight: // x, dy -> dw [O, C, KH, KW]
    return product(elements(shape(1)),
                   {static_cast<double>(n.shape.constNumel() / n.shape.dims[0]), 0}, 2);
  case Op::MaxPool2d:
  case Op::AvgPool2d:
    return product(elements(n.shape),
                   {static_cast<double>(n.attrs.window[0] * n.attrs.window[1]), 0}, 1);
  default: {
    Count most = elements(n.shape);
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      Count c = elements(shape(i));
      if (c.fixed + c.perN * 128 > most.fixed + most.perN * 128)
        most = c;
    }
    return most;
  }
  }
}

/// The kernels of the training step, as --profile names them: index, kind
/// (--emit=opt's "kernel 3 matmul"), their ops, the .nn name of a value
/// they compute, and their floating-point operations.
nlohmann::json profileKernels(const EntryPoint &step) {
  nlohmann::json kernels = nlohmann::json::array();
  const Graph &g = step.graph;
  for (size_t i = 0; i < step.schedule.kernels.size(); ++i) {
    const Kernel &k = step.schedule.kernels[i];
    if (k.kind == Kernel::Kind::View)
      continue;
    std::string ops, label;
    Count flops;
    for (ValueId v : k.nodes) {
      const Node &n = g.node(v);
      if (n.op == Op::Assign)
        continue;
      std::string name = opName(n.op);
      if ((", " + ops + ",").find(", " + name + ",") == std::string::npos)
        ops += (ops.empty() ? "" : ", ") + name;
      if (label.empty())
        label = n.label;
      Count c = nodeFlops(g, n);
      flops.fixed += c.fixed;
      flops.perN += c.perN;
    }
    kernels.push_back({{"kernel", i},
                       {"name", fmt::format("kernel {} {}", i, kernelKindName(k.kind))},
                       {"ops", ops},
                       {"label", label},
                       {"flops", flops.fixed},
                       {"flops_per_n", flops.perN}});
  }
  return kernels;
}

} // namespace

std::string describeModel(const CompiledModel &cm, const TargetInfo &target) {
  using nlohmann::json;
  const Model &m = cm.model;
  json d;
  d["abi"] = NETC_ABI_VERSION;
  d["netc_version"] = NETC_VERSION;
  d["name"] = m.name;
  d["target"] = {{"cpu", target.cpu}, {"features", target.features}};
  json params = json::array();
  for (size_t i = 0; i < m.params.size(); ++i) {
    const auto &p = m.params[i];
    params.push_back(
        {{"name", p.name},
         {"shape", shapeJson(p.shape)},
         {"offset", cm.persistent.params[i].offset},
         {"init", {{"kind", initKind(p.init.kind)}, {"a", p.init.a}, {"b", p.init.b}}}});
  }
  d["params"] = params;
  json buffers = json::array();
  for (size_t i = 0; i < m.buffers.size(); ++i)
    buffers.push_back({{"name", m.buffers[i].name},
                       {"shape", shapeJson(m.buffers[i].shape)},
                       {"offset", cm.persistent.buffers[i].offset},
                       {"dtype", m.buffers[i].integer ? "I64" : "F32"}});
  d["buffers"] = buffers;
  json states = json::array();
  for (const auto &s : cm.persistent.states)
    states.push_back({{"name", s.name}, {"shape", shapeJson(s.shape)}, {"offset", s.offset}});
  d["states"] = states;
  d["max_chunks"] = kMaxChunks;
  // The twin's: its scratch, and where the f32 gradients leave the
  // branches it takes (its inputs after the fields, Decisions.h).
  json decisions = json::array();
  for (size_t i = 0; cm.gradients.graph.output("decision " + std::to_string(i)) != kNoValue; ++i)
    decisions.push_back(outputLocation(cm.gradients, "decision " + std::to_string(i)));
  d["scratch_gradients"] = {{"fixed_bytes", cm.gradients.plan.fixedBytes},
                            {"batch_bytes_per_n", cm.gradients.plan.batchBytesPerN}};
  d["scratch_f64"] = {{"fixed_bytes", cm.gradients64.plan.fixedBytes},
                      {"batch_bytes_per_n", cm.gradients64.plan.batchBytesPerN},
                      {"decisions", decisions}};
  json options = json::object();
  for (const auto &[k, v] : m.data.numbers)
    options[k] = v;
  for (const auto &[k, v] : m.data.texts)
    options[k] = v;
  json fields = json::array();
  for (const auto &f : m.data.fields)
    fields.push_back({{"name", f.name},
                      {"role", f.role},
                      {"dtype", dtypeName(f.dtype)},
                      {"shape", shapeJson(f.shape)}});
  json inlined = json::object();
  for (const auto &t : m.data.inlineTensors)
    inlined[t.name] = {{"shape", shapeJson(t.shape)}, {"values", t.values}};
  d["data"] = {{"source", m.data.source}, {"options", options},           {"path", m.data.path},
               {"inline", inlined},        {"classes", m.data.classes}, {"batch", m.data.batch},
               {"fields", fields}};
  if (m.prediction.value != kNoValue) {
    // Where forward leaves it: scratch + fixed + per_npad * Npad bytes.
    const char *kinds[] = {"logits", "probabilities", "log_probabilities",
                           "probability", "logit", "values"};
    const Shape &shape = cm.forward.graph.shape(cm.forward.graph.output("prediction"));
    json p = outputLocation(cm.forward, "prediction");
    p.update({{"kind", kinds[static_cast<int>(m.prediction.kind)]},
              {"width", shape.constNumel()},
              {"classes", shape.constNumel()},
              {"target", m.prediction.target}});
    d["prediction"] = p;
  }
  // hparams in index order (Pipeline.h: hparams); "base" and "offset" mark
  // a value of 1 - base^(step + offset), "key" a half of the step's random
  // key (runtime.h: netc_dropout_key).
  json hparams = json::array();
  for (const HParam &h : netc::hparams(m))
    if (h.kind == NETC_HPARAM_LR)
      hparams.push_back({{"name", h.name}, {"default", h.value}});
    else if (h.kind == NETC_HPARAM_STEP)
      hparams.push_back({{"name", h.name}, {"base", h.value}, {"offset", h.offset}});
    else
      hparams.push_back({{"name", h.name}, {"key", true}});
  d["hparams"] = hparams;
  d["min_batch"] = minimumBatch(m);
  d["trains"] = m.trains();
  d["loss_given"] = m.lossGiven;
  json prints = json::array();
  for (size_t i = 0; i < m.prints.size(); ++i) {
    json p = outputLocation(cm.forward, "print " + std::to_string(i));
    p["text"] = m.prints[i].text;
    prints.push_back(p);
  }
  d["prints"] = prints;
  d["optimizer"] = {{"kind", m.optimizer.kind},           {"lr", m.optimizer.lr},
                    {"momentum", m.optimizer.momentum},   {"nesterov", m.optimizer.nesterov},
                    {"dampening", m.optimizer.dampening}, {"centered", m.optimizer.centered},
                    {"amsgrad", m.optimizer.amsgrad},     {"weight_decay", m.optimizer.weightDecay},
                    {"alpha", m.optimizer.alpha},         {"beta1", m.optimizer.beta1},
                    {"beta2", m.optimizer.beta2},         {"eps", m.optimizer.eps}};
  d["train"] = {{"steps", m.train.steps},
                {"epochs", m.train.epochs},
                {"report_every", m.train.reportEvery},
                {"seed", m.train.seed}};
  json report = json::array();
  for (size_t i = 0; i < m.report.size(); ++i) {
    const ReportPiece &r = m.report[i];
    if (r.value != kNoValue)
      report.push_back({{"value", outputLocation(cm.forward, "report " + std::to_string(i))}});
    else if (r.param < 0)
      report.push_back({{"text", r.text}});
    else
      report.push_back({{"param", r.param}, {"offset", r.offset}});
  }
  d["report"] = report;
  d["profile"] = profileKernels(cm.trainStep);
  // --check-finite's probe: where each value of the step lies after it,
  // in execution order, with the operation and its place in the .nn file.
  json probe = json::array(); // none without parameters: nothing trains
  for (const CompiledModel::ProbeValue &v : cm.probeValues) {
    json p = outputLocation(cm.probe, v.output);
    p.update({{"op", v.op},
              {"origin", v.origin},
              {"label", v.label},
              {"phase", phaseName(v.phase)},
              {"line", v.line},
              {"column", v.column}});
    probe.push_back(p);
  }
  d["probe"] = {{"source", cm.source},
                {"fixed_bytes", cm.probe.plan.fixedBytes},
                {"batch_bytes_per_n", cm.probe.plan.batchBytesPerN},
                {"values", probe}};
  d["entry_points"] = {"init", "train_step", "forward", "gradients", "gradients_f64"};
  if (!cm.predict.graph.outputs.empty())
    d["entry_points"].push_back("predict");
  if (cm.distributed()) {
    d["entry_points"].push_back("shard_gradients");
    d["entry_points"].push_back("apply_update");
  }
  return d.dump();
}

std::unique_ptr<llvm::Module> emitModule(llvm::LLVMContext &context, const CompiledModel &model,
                                         const TargetInfo &target, bool withMain) {
  auto m = std::make_unique<llvm::Module>(model.model.name, context);
  const std::string symbol = modelSymbol(model.model.name);
  const std::string prefix = model.model.name + ".";
  const PersistentLayout &layout = model.persistent;
  llvm::Function *init = emitInit(*m, model, prefix + "init");
  KernelCache kernels;
  auto emit = [&](const EntryPoint &e, const MemoryPlan &plan, const char *name, EntryKind kind,
                  bool f64 = false) {
    return FunctionEmitter(*m, kernels, e, plan, prefix + name, kind, target, layout, f64).emit();
  };
  llvm::Function *trainStep =
      FunctionEmitter(*m, kernels, model.trainStep, model.trainStep.plan, prefix + "train_step",
                      EntryKind::Loss, target, layout)
          .profiled()
          .emit();
  llvm::Function *forward = emit(model.forward, model.forward.plan, "forward", EntryKind::Loss);
  bool predicts = !model.predict.graph.outputs.empty();
  llvm::Function *predict =
      predicts ? emit(model.predict, model.predict.plan, "predict", EntryKind::Predict) : nullptr;
  llvm::Function *gradients =
      emit(model.gradients, model.gradients.plan, "gradients", EntryKind::Gradients);
  llvm::Function *gradients64 = emit(model.gradients64, model.gradients64.plan, "gradients_f64",
                                     EntryKind::Gradients, /*f64=*/true);
  llvm::Constant *shardGradients = llvm::ConstantPointerNull::get(llvm::PointerType::getUnqual(context));
  llvm::Constant *applyUpdate = shardGradients;
  if (model.distributed()) {
    shardGradients = emit(model.shardGradients, model.shardGradients.plan, "shard_gradients",
                          EntryKind::ShardGradients);
    llvm::Function *update =
        emit(model.applyUpdate, model.applyUpdate.plan, "apply_update.graph", EntryKind::Update);
    applyUpdate = emitApplyUpdate(*m, update, layout, prefix + "apply_update");
  }
  llvm::Function *probe = model.model.trains()
                              ? emit(model.probe, model.probe.plan, "probe", EntryKind::Probe)
                              : nullptr;

  auto *ptr = llvm::PointerType::getUnqual(context);
  auto i64 = [&](int64_t v) {
    return llvm::ConstantInt::get(llvm::Type::getInt64Ty(context), static_cast<uint64_t>(v));
  };
  int64_t predictionFloats = 0;
  if (predicts)
    predictionFloats = model.predict.graph.shape(model.predict.graph.output("prediction")).constNumel();
  ScratchSize scratch = scratchSize(model);
  std::vector<llvm::Constant *> fields = {
      llvm::ConstantInt::get(llvm::Type::getInt32Ty(context), NETC_ABI_VERSION),
      cString(*m, model.model.name, "model_name"),
      cString(*m, describeModel(model, target), "model_description"),
      i64(model.persistent.totalFloats),
      i64(scratch.fixedBytes),
      i64(scratch.batchBytesPerN),
      i64(predictionFloats),
      init,
      trainStep,
      forward,
      predict ? static_cast<llvm::Constant *>(predict) : llvm::ConstantPointerNull::get(ptr),
      gradients,
      gradients64};
  llvm::DataLayout dataLayout = target.machine->createDataLayout();
  emitCTables(*m, model, dataLayout, fields);
  fields.insert(fields.end(),
                {shardGradients, applyUpdate,
                 probe ? static_cast<llvm::Constant *>(probe) : llvm::ConstantPointerNull::get(ptr)});
  auto *type = descriptorType(context);
  assert(dataLayout.getTypeAllocSize(type) == sizeof(netc_model) &&
         "descriptorType lays out as runtime.h's struct netc_model");
  auto *descriptor = new llvm::GlobalVariable(*m, type, /*isConstant=*/true,
                                              llvm::GlobalValue::ExternalLinkage,
                                              llvm::ConstantStruct::get(type, fields), symbol);
  if (withMain)
    emitMain(*m, descriptor, model.distributed());
  if (target.updateEstimates())
    for (llvm::Function &f : *m)
      if (!f.isDeclaration())
        f.addFnAttr("reciprocal-estimates", kReciprocalEstimates);
  assert(!llvm::verifyModule(*m, &llvm::errs()) && "codegen produced invalid IR");
  return m;
}

} // namespace netc
