// EmitContext.h - what every kernel lowering needs while emitting one entry
// point: the builder, the graph, its schedule and memory plan, and the base
// addresses of the buffers it uses.
//
// Kernel lowerings (Kernels.h) only read this; FunctionEmitter (Codegen.cpp)
// builds it.
#pragma once

#include "compiler/plan/MemoryPlanner.h"
#include "compiler/transforms/Fuse.h"

#include <llvm/IR/IRBuilder.h>

#include <functional>
#include <utility>
#include <vector>

namespace netc {

struct EmitContext {
  llvm::IRBuilder<> &b;
  llvm::Function *fn;
  const Graph &graph;
  const Schedule &schedule;
  const MemoryPlan &plan;
  llvm::Value *batch = nullptr;   ///< N, i64
  llvm::Value *hparams = nullptr; ///< const T*, T the element type
  /// Per node: its base address once computed (pointer()), else null.
  mutable std::vector<llvm::Value *> pointers;

  llvm::Type *elementType = nullptr; ///< float, or double for the f64 twin
  unsigned vectorBytes = 16;         ///< SIMD register width of the target
  unsigned vectorRegisters = 16;     ///< SIMD registers a kernel may keep live
  /// The optimizer's update divides and takes square roots by estimates
  /// (emitElementwise; TargetInfo::updateEstimates).
  bool estimates = false;
  llvm::Value *scratch = nullptr;    ///< the arena (kernel workspaces: plan.workspace)
  /// Emits a node's base address in the function's entry block (Codegen).
  std::function<llvm::Value *(ValueId)> address = nullptr;
  /// A byte offset in the arena as this function sees it: the constant in
  /// an entry point, read from the launch's bindings in a kernel function
  /// (Codegen.cpp); null: the constant.
  std::function<llvm::Value *(int64_t)> arenaOffset = nullptr;
  llvm::Type *fp() const { return elementType; }
  llvm::Type *i64() const { return b.getInt64Ty(); }
  llvm::Value *i64(int64_t v) const { return b.getInt64(static_cast<uint64_t>(v)); }

  /// A dimension's extent: N for the batch dimension.
  llvm::Value *extent(int64_t dim) const { return dim == kBatch ? batch : i64(dim); }
  /// Number of elements of `shape`.
  llvm::Value *numel(const Shape &shape) const;
  /// The value of an inline leaf (Const, HParam, BatchSize) as f32.
  llvm::Value *inlineScalar(ValueId v) const;
  bool isInline(ValueId v) const;

  /// A node's base address (null if not in memory), computed on first use.
  llvm::Value *pointer(ValueId v) const {
    llvm::Value *&p = pointers[static_cast<size_t>(v)];
    if (!p && address)
      p = address(v);
    return p;
  }
  /// The start of kernel `kernel`'s workspace in the arena (plan.workspace).
  llvm::Value *workspace(int kernel) const;
  llvm::Value *load(ValueId v, llvm::Value *index) const;
  void store(ValueId v, llvm::Value *index, llvm::Value *value) const;

  // Chunking for netc_rt_parallel_for, the same for every kernel that
  // splits: the outer extent is cut into whole units of `granule` indices
  // (tiles, vector groups); the count and the ranges depend on the shapes
  // only, never on the thread count.
  /// ceil(extent / granule): the units chunks are made of.
  llvm::Value *chunkUnits(llvm::Value *extent, int64_t granule) const;
  /// max(1, min(byWork, units, kMaxChunks)).
  llvm::Value *chunkCount(llvm::Value *byWork, llvm::Value *units) const;
  /// Chunk `chunk` of `chunks`: units [c·U/C, (c+1)·U/C), as outer indices
  /// clamped to `extent`.
  std::pair<llvm::Value *, llvm::Value *> chunkRange(llvm::Value *chunk, llvm::Value *chunks,
                                                     llvm::Value *extent, int64_t granule) const;

  /// The running chunk's slot (netc_rt_chunk_slot): what its thread's
  /// chunks share of a kernel's workspace.
  llvm::Value *chunkSlot() const;

  /// part(0) + part(1) + ... + part(chunks - 1), added in that order: the
  /// total of per-chunk partial sums, the same for any number of threads
  /// (part(c) emits the load of chunk c's partial sum, an element or a
  /// vector of them).
  llvm::Value *sumOverChunks(llvm::Value *chunks,
                             const std::function<llvm::Value *(llvm::Value *)> &part) const;

  /// Emits `for (i = 0; i < count; ++i) body(i)` at the insertion point and
  /// leaves the builder after the loop. `rolled`: LLVM may not unroll it
  /// (a copy or fill per parameter, which unrolled made one basic block
  /// per entry point of a deep model, and instruction scheduling takes
  /// time quadratic in a block's length).
  void loop(llvm::Value *count, const std::function<void(llvm::Value *)> &body,
            const char *name = "i", bool rolled = false) const;
};

/// The square matrix whose rows are the vectors `rows` (as many as their
/// lanes, a power of 2), transposed: log2(lanes) rounds, round b swapping
/// the off-diagonal b x b blocks within every block of 2b x 2b (two
/// two-source shuffles per pair of rows; LLVM's x86 backend combines them,
/// ~110 shuffles for 16 x 16, as fast as the textbook unpack/shuffle
/// sequence measured).
std::vector<llvm::Value *> emitTranspose(llvm::IRBuilder<> &b, std::vector<llvm::Value *> rows);

/// Emits `if (cond) then(); else otherwise();` in `fn` at b's insertion
/// point and leaves b after it.
void emitIfElse(llvm::IRBuilder<> &b, llvm::Function *fn, llvm::Value *cond,
                const std::function<void()> &then, const std::function<void()> &otherwise);

/// A constant array of `m`, made once per name and type (entry points and
/// kernels share it): values 0..count-1 of `value` as `type` (float,
/// double or i32), 64-byte aligned; its name is `name` and the type's.
llvm::GlobalVariable *constantArray(llvm::Module &m, const std::string &name, llvm::Type *type,
                                    const std::function<double(int64_t)> &value, int64_t count);

} // namespace netc
