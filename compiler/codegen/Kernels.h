// Kernels.h - one lowering function per kernel kind.
//
// Each takes the kernel and emits its code at the builder's insertion point.
// They are independent: a faster matrix product replaces MatMulKernel.cpp
// without touching the loop nests, and the other way round.
#pragma once

#include "compiler/codegen/EmitContext.h"

namespace netc {

/// How the optimizer update's divisions and square roots are estimated
/// (LLVM's "reciprocal-estimates" function attribute, on every function;
/// only ops emitElementwise marks use it): the CPU's 14-bit estimate and
/// one Newton step, scalar or vector.
constexpr const char *kReciprocalEstimates = "divf:1,vec-divf:1,sqrtf:1,vec-sqrtf:1";

/// One elementwise op on scalars or vectors of the element type.
llvm::Value *emitElementwise(const EmitContext &ctx, const Node &n, llvm::Value *a, llvm::Value *b);

/// Fused elementwise ops, broadcasts, reductions and assigns over one domain.
void emitLoopKernel(const EmitContext &ctx, const Kernel &kernel);
/// Whether a loop kernel can run as independent chunks (no reductions), how
/// many (from the domain's size only), and chunk `chunk` of them.
bool loopKernelSplits(const Graph &graph, const Kernel &kernel);
llvm::Value *loopChunkCount(const EmitContext &ctx, const Kernel &kernel);
void emitLoopChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                   llvm::Value *chunks);
/// After the chunks of a kernel whose sums split (loopSumsSplit): the sums'
/// results from the chunks' partial sums, in chunk order.
void emitLoopFinish(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunks);

/// C = op(A) · op(B) and its epilogue, in independent chunks along C's
/// outer dimension for netc_rt_parallel_for: how many (a function of the
/// shapes and N, never of the thread count), and chunk `chunk` of them.
llvm::Value *matMulChunkCount(const EmitContext &ctx, const Kernel &kernel);
void emitMatMulChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                     llvm::Value *chunks);

/// A call of the module's shared GEMM function, for other kernels (the
/// convolutions): C (rows x cols, row-major) = op(A) · op(B), or += with
/// `accumulate`; lda and ldb are the row lengths of A and B as stored.
struct GemmCall {
  bool transA = false, transB = false, accumulate = false;
  llvm::Value *a, *b, *c, *rows, *cols, *depth, *lda, *ldb;
  /// Implicit operands (convolutions, WindowKernel.cpp), i32 tables of
  /// element offsets: row r of A (not transposed, broadcast layout) starts
  /// at a + aRows[r] instead of a + r·lda; row k of B at b + bRows[k]
  /// instead of b + k·ldb.
  llvm::Value *aRows = nullptr, *bRows = nullptr;
  /// aRows' offsets come in runs of this many consecutive ones (a
  /// convolution's kernel row: aRows[r] = aRows[r - r % aRun] + r % aRun),
  /// so a row tile reads one offset per run and addresses the run's rows
  /// from it.
  int64_t aRun = 1;
  /// C's columns on a grid of `gridWidth` (broadcast layout): column q is
  /// grid cell (q / gridWidth, q % gridWidth), stored only if
  /// q % gridWidth < gridValid, at row·ldc + (q / gridWidth)·gridValid +
  /// q % gridWidth.
  llvm::Value *gridWidth = nullptr, *gridValid = nullptr, *ldc = nullptr;
  /// The depth on a grid (broadcast layout): k runs over depth rows of
  /// `depthValid` cells, row r's at k = r·depthWidth + j (an implicit weight
  /// gradient's positions without the grid's dropped columns).
  llvm::Value *depthWidth = nullptr, *depthValid = nullptr;
};
void emitGemmCall(const EmitContext &ctx, const GemmCall &call);
/// The same product with its tiles inline, each finished vector of C
/// handed to `store(value, row, column, mask)` instead of written (an
/// epilogue). Broadcast layout only (no transposed B).
using GemmStore =
    std::function<void(llvm::Value *, llvm::Value *, llvm::Value *, llvm::Value *)>;
void emitGemmInline(const EmitContext &ctx, const GemmCall &call, const GemmStore &store);

/// Softmax and log-softmax along the last axis, numerically stable.
void emitRowsKernel(const EmitContext &ctx, const Kernel &kernel);

/// Pick (scores at the labels) and Scatter (its adjoint).
void emitGatherKernel(const EmitContext &ctx, const Kernel &kernel);

/// Convolutions and pooling over [N, C, H, W], and their gradients, in
/// independent chunks of images (of output channels for the weight
/// gradient) for netc_rt_parallel_for.
llvm::Value *windowChunkCount(const EmitContext &ctx, const Kernel &kernel);
void emitWindowChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                     llvm::Value *chunks);
/// Before the chunks run: the flipped weights of a stride-1 input gradient.
void emitWindowPrepare(const EmitContext &ctx, const Kernel &kernel);
/// After every chunk has run: the weight gradient's per-chunk partial sums
/// added up, in chunk order.
void emitWindowFinish(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunks);

/// Stack and Slice along the last axis.
void emitStackKernel(const EmitContext &ctx, const Kernel &kernel);
void emitSliceKernel(const EmitContext &ctx, const Kernel &kernel);

/// The power spectrum of windowed frames by an FFT (SpectrumKernel.cpp), in
/// independent chunks of frames.
llvm::Value *spectrumChunkCount(const EmitContext &ctx, const Kernel &kernel);
void emitSpectrumChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                       llvm::Value *chunks);

/// Transpose, Frames and FramesGrad, in independent chunks of matrices or
/// signals.
llvm::Value *layoutChunkCount(const EmitContext &ctx, const Kernel &kernel);
void emitLayoutChunk(const EmitContext &ctx, const Kernel &kernel, llvm::Value *chunk,
                     llvm::Value *chunks);

} // namespace netc
