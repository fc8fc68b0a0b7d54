// EmitContext.cpp - helpers shared by the kernel lowerings.
#include "compiler/codegen/EmitContext.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/GlobalVariable.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Metadata.h>
#include <llvm/IR/Module.h>

#include <cassert>

namespace netc {

llvm::Value *EmitContext::numel(const Shape &shape) const {
  llvm::Value *n = i64(shape.constNumel());
  if (shape.hasBatch())
    n = b.CreateMul(n, batch);
  return n;
}

bool EmitContext::isInline(ValueId v) const {
  Op op = graph.node(v).op;
  return op == Op::Const || op == Op::HParam || op == Op::BatchSize;
}

llvm::Value *EmitContext::inlineScalar(ValueId v) const {
  const Node &n = graph.node(v);
  switch (n.op) {
  case Op::Const:
    return llvm::ConstantFP::get(fp(), n.attrs.value);
  case Op::BatchSize:
    return b.CreateSIToFP(batch, fp());
  case Op::HParam:
    return b.CreateLoad(
        fp(), b.CreateConstInBoundsGEP1_64(fp(), hparams, static_cast<uint64_t>(n.attrs.k)));
  default:
    break;
  }
  assert(false && "not an inline leaf");
  return nullptr;
}

llvm::Value *EmitContext::workspace(int kernel) const {
  int64_t offset = plan.workspace[static_cast<size_t>(kernel)];
  return b.CreateInBoundsGEP(b.getInt8Ty(), scratch,
                             arenaOffset ? arenaOffset(offset) : i64(offset));
}

llvm::Value *EmitContext::load(ValueId v, llvm::Value *index) const {
  if (isInline(v))
    return inlineScalar(v);
  llvm::Value *base = pointer(v);
  assert(base && "load from a value that is not in memory");
  return b.CreateLoad(fp(), b.CreateInBoundsGEP(fp(), base, index));
}

void EmitContext::store(ValueId v, llvm::Value *index, llvm::Value *value) const {
  llvm::Value *base = pointer(v);
  assert(base && "store to a value that is not in memory");
  b.CreateStore(value, b.CreateInBoundsGEP(fp(), base, index));
}

llvm::Value *
EmitContext::sumOverChunks(llvm::Value *chunks,
                           const std::function<llvm::Value *(llvm::Value *)> &part) const {
  llvm::Value *first = part(i64(0));
  llvm::IRBuilder<> entry(&fn->getEntryBlock(), fn->getEntryBlock().begin());
  llvm::AllocaInst *acc = entry.CreateAlloca(first->getType());
  b.CreateStore(first, acc);
  loop(
      b.CreateSub(chunks, i64(1)),
      [&](llvm::Value *c) {
        llvm::Value *next = part(b.CreateAdd(c, i64(1)));
        b.CreateStore(b.CreateFAdd(b.CreateLoad(first->getType(), acc), next), acc);
      },
      "chunk");
  return b.CreateLoad(first->getType(), acc);
}

llvm::Value *EmitContext::chunkUnits(llvm::Value *extent, int64_t granule) const {
  return b.CreateUDiv(b.CreateAdd(extent, i64(granule - 1)), i64(granule));
}

llvm::Value *EmitContext::chunkCount(llvm::Value *byWork, llvm::Value *units) const {
  llvm::Value *count = b.CreateBinaryIntrinsic(llvm::Intrinsic::umin, byWork, units);
  count = b.CreateBinaryIntrinsic(llvm::Intrinsic::umin, count, i64(kMaxChunks));
  return b.CreateBinaryIntrinsic(llvm::Intrinsic::umax, count, i64(1));
}

llvm::Value *EmitContext::chunkSlot() const {
  llvm::FunctionCallee slot = fn->getParent()->getOrInsertFunction(
      "netc_rt_chunk_slot", llvm::FunctionType::get(b.getInt64Ty(), false));
  return b.CreateCall(slot);
}

std::pair<llvm::Value *, llvm::Value *> EmitContext::chunkRange(llvm::Value *chunk,
                                                                llvm::Value *chunks,
                                                                llvm::Value *extent,
                                                                int64_t granule) const {
  llvm::Value *units = chunkUnits(extent, granule);
  auto edge = [&](llvm::Value *c) {
    llvm::Value *at = b.CreateMul(b.CreateUDiv(b.CreateMul(c, units), chunks), i64(granule));
    return b.CreateBinaryIntrinsic(llvm::Intrinsic::umin, at, extent);
  };
  return {edge(chunk), edge(b.CreateAdd(chunk, i64(1)))};
}

void EmitContext::loop(llvm::Value *count, const std::function<void(llvm::Value *)> &body,
                       const char *name, bool rolled) const {
  llvm::LLVMContext &c = b.getContext();
  llvm::BasicBlock *pre = b.GetInsertBlock();
  auto *header = llvm::BasicBlock::Create(c, std::string(name) + ".loop", fn);
  auto *exit = llvm::BasicBlock::Create(c, std::string(name) + ".exit", fn);
  b.CreateCondBr(b.CreateICmpSGT(count, i64(0)), header, exit);
  b.SetInsertPoint(header);
  llvm::PHINode *iv = b.CreatePHI(i64(), 2, name);
  iv->addIncoming(i64(0), pre);
  body(iv);
  llvm::Value *next = b.CreateAdd(iv, i64(1), std::string(name) + ".next", true, true);
  iv->addIncoming(next, b.GetInsertBlock());
  llvm::BranchInst *latch = b.CreateCondBr(b.CreateICmpSLT(next, count), header, exit);
  if (rolled) {
    llvm::MDNode *noUnroll =
        llvm::MDNode::get(c, llvm::MDString::get(c, "llvm.loop.unroll.disable"));
    llvm::MDNode *id = llvm::MDNode::getDistinct(c, {nullptr, noUnroll});
    id->replaceOperandWith(0, id); // a loop's ID refers to itself
    latch->setMetadata(llvm::LLVMContext::MD_loop, id);
  }
  b.SetInsertPoint(exit);
}

llvm::GlobalVariable *constantArray(llvm::Module &m, const std::string &name, llvm::Type *type,
                                    const std::function<double(int64_t)> &value, int64_t count) {
  const char *suffix = type->isDoubleTy() ? "f64" : type->isFloatTy() ? "f32" : "i32";
  std::string full = name + "." + suffix;
  if (llvm::GlobalVariable *g = m.getGlobalVariable(full, /*AllowInternal=*/true))
    return g;
  auto values = [&](auto zero) {
    std::vector<decltype(zero)> v(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i)
      v[static_cast<size_t>(i)] = static_cast<decltype(zero)>(value(i));
    return llvm::ConstantDataArray::get(m.getContext(), llvm::ArrayRef(v));
  };
  llvm::Constant *data = type->isDoubleTy()  ? values(0.0)
                         : type->isFloatTy() ? values(0.0f)
                                             : values(uint32_t{0});
  auto *g = new llvm::GlobalVariable(m, data->getType(), /*isConstant=*/true,
                                     llvm::GlobalValue::InternalLinkage, data, full);
  g->setAlignment(llvm::Align(64));
  g->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
  return g;
}

std::vector<llvm::Value *> emitTranspose(llvm::IRBuilder<> &b, std::vector<llvm::Value *> rows) {
  int64_t lanes = static_cast<int64_t>(rows.size());
  for (int64_t bit = 1; bit < lanes; bit *= 2) {
    std::vector<int> low, high; // rows r and r + bit
    for (int64_t col = 0; col < lanes; ++col) {
      low.push_back(static_cast<int>(col & bit ? lanes + col - bit : col));
      high.push_back(static_cast<int>(col & bit ? lanes + col : col + bit));
    }
    for (int64_t r = 0; r < lanes; ++r) {
      if (r & bit)
        continue;
      llvm::Value *x = rows[static_cast<size_t>(r)], *y = rows[static_cast<size_t>(r + bit)];
      rows[static_cast<size_t>(r)] = b.CreateShuffleVector(x, y, low);
      rows[static_cast<size_t>(r + bit)] = b.CreateShuffleVector(x, y, high);
    }
  }
  return rows;
}

void emitIfElse(llvm::IRBuilder<> &b, llvm::Function *fn, llvm::Value *cond,
                const std::function<void()> &then, const std::function<void()> &otherwise) {
  llvm::LLVMContext &c = b.getContext();
  auto *thenBlock = llvm::BasicBlock::Create(c, "then", fn);
  auto *elseBlock = llvm::BasicBlock::Create(c, "else", fn);
  auto *done = llvm::BasicBlock::Create(c, "endif", fn);
  b.CreateCondBr(cond, thenBlock, elseBlock);
  b.SetInsertPoint(thenBlock);
  then();
  b.CreateBr(done);
  b.SetInsertPoint(elseBlock);
  otherwise();
  b.CreateBr(done);
  b.SetInsertPoint(done);
}

} // namespace netc
