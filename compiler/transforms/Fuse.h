// Fuse.h - groups graph nodes into kernels: the units codegen emits.
#pragma once

#include "compiler/graph/Graph.h"

#include <functional>
#include <iosfwd>
#include <vector>

namespace netc {

/// The most chunks a kernel splits into for the runtime's threads (the
/// model description's "max_chunks": more threads than this have nothing
/// to do). Kernel workspaces (MemoryPlanner.h) are planned for this many.
constexpr int64_t kMaxChunks = 16;

/// The most nodes fused into one loop kernel. A loop's body is one basic
/// block, and LLVM's instruction scheduler takes time quadratic in a
/// block's length: a deep model's optimizer updates (thousands of
/// parameters of one shape) go in several kernels of this many nodes, most
/// with the same code (compiled once: Codegen's KernelCache). No example
/// model comes near it.
constexpr size_t kMaxLoopNodes = 128;

struct Kernel {
  enum class Kind {
    Loop,   ///< one loop nest over `domain`: elementwise ops, broadcasts,
            ///< reductions of domain-shaped values, assigns
    MatMul, ///< one matrix product, then its epilogue: elementwise nodes
            ///< and assigns over the product's shape, applied per tile
    Rows,   ///< softmax / log_softmax, row by row
    Gather, ///< pick / scatter by class labels
    Window, ///< a convolution or pooling, or one of their gradients
    Stack,  ///< one stack
    Slice,  ///< one slice
    Layout, ///< one transpose, frames or frames' adjoint
    Spectrum, ///< one power spectrum (an FFT)
    View,   ///< a reshape: no code, its result aliases its operand
  };
  Kind kind = Kind::Loop;
  Shape domain;               ///< Loop only
  std::vector<ValueId> nodes; ///< in graph order
};

/// The kernels of a graph, in execution order, and which values live in
/// memory (the rest stay in registers inside their loop).
struct Schedule {
  std::vector<Kernel> kernels;
  std::vector<int> kernelOf;      ///< per node; -1 for inline leaves
  std::vector<bool> materialized; ///< per node
};

/// Greedy fusion in graph order. A node joins the latest loop kernel of its
/// domain when all its operands are already computed there (reduction
/// results excepted: they are complete only after the loop) or in earlier
/// kernels; otherwise it starts a kernel. An Assign joins the kernel
/// computing its value when nothing after that kernel reads the old value.
/// Const, HParam and BatchSize are computed inline where used. Then a loop
/// kernel right after a matrix product, over its shape and made of cheap
/// elementwise ops and assigns, becomes that product's epilogue, and so do
/// the cheap elementwise ops right after a convolution (its bias and
/// activation) - unless `epilogues` is false: the raw-gradients entry point
/// stays unfused, a reference for --gradcheck and --grad-stats.
/// Nodes marked in `sunk` (Recompute.h) are placed like a ReLU's mask: in
/// the kernel of their first user, when it loops over their shape.
Schedule fuse(const Graph &graph, bool epilogues = true, const std::vector<bool> &sunk = {});

/// Const, HParam and BatchSize: computed where used, never a kernel's.
bool isInlineLeaf(Op op);

/// Whether a tensor of `shape` is worth keeping out of memory (a product's
/// epilogue, a value recomputed): 256 values per example or 64K in all.
/// Smaller ones stay in cache anyway.
bool bigTensor(const Shape &shape);

/// A non-flat loop kernel's trailing block (LoopKernel.cpp): the first
/// dimension of a trailing block of the domain that every tensor the kernel
/// reads or sums into spans whole or does not vary over, fixed sizes and
/// at least 64 elements together; the rank if there is none.
size_t loopBlockStart(const Graph &graph, const Kernel &kernel);

/// A loop kernel whose sums (sum_to, no sum or assign) all reduce a
/// trailing block and its first dimension, into fixed-size targets (batch
/// norm's and a convolution bias's gradient sums over [N, C, H, W]): it
/// runs in chunks of the first dimension, each chunk summing into its own
/// partial targets (a workspace), added up in chunk order afterwards.
bool loopSumsSplit(const Graph &graph, const Kernel &kernel);

/// A weight gradient's window kernel (Fuse.cpp) may also hold, after its
/// front: the bias gradient, a sum_to of the same dy (summed by the GEMM);
/// then the max pooling gradient (window_take_grad, with its prologue, the
/// masked pooled gradient, and any epilogue) that computes dy, image by
/// image into the kernel's workspace, dy then never
/// going to memory. An input gradient's kernel may hold the pooling
/// gradient computing its dy too (written to its workspace and, for the
/// weight gradient, to memory). The bias gradient's sum, or kNoValue:
ValueId fusedBiasSum(const Graph &graph, const Kernel &kernel);
/// Where the pooling gradient computing dy starts in kernel.nodes, or 0.
size_t fusedPoolGradient(const Graph &graph, const Kernel &kernel);
/// A window_take_grad at kernel.nodes[at] may be followed by the loop
/// computing its dy (its prologue, of the windows' shape: Fuse.cpp),
/// computed window by window where dy is read. Where its epilogue (the
/// nodes of the image's shape after it) starts: at + 1 without a prologue.
size_t takeGradientPrologue(const Graph &graph, const Kernel &kernel, size_t at);
/// What the pooling gradient at kernel.nodes[at] computes: its epilogue's
/// last value, or its own.
ValueId poolGradientResult(const Graph &graph, const Kernel &kernel, size_t at);
/// A convolution's kernel with its fused pooling, or a pooling's with the
/// loop computing its input, whose input (the epilogue's or the loop's last
/// value) nothing outside the kernel reads: the image (the plane) goes to
/// the kernel's workspace (MemoryPlanner.h: Workspace::image), pooled from
/// there, and not to memory.
bool pooledInWorkspace(const Graph &graph, const Kernel &kernel);
/// A tiling max pooling's kernel (alone, after a convolution or with the
/// loop computing its input) may end with the windows' offsets of the
/// same pooling (max_pool2d_index), found with each maximum. Their place
/// in kernel.nodes (the last), or 0.
size_t fusedPoolIndex(const Graph &graph, const Kernel &kernel);
/// A weight gradient's kernel may instead hold, after its front, the
/// elementwise loop that computes dy (batch norm's input gradient), run
/// image by image onto the kernel's grid; a tiling max pooling's kernel the
/// loop that computes its input (batch norm's normalisation and ReLU), run
/// plane by plane before the plane is pooled. Where the loop starts, or 0.
size_t fusedLoop(const Graph &graph, const Kernel &kernel);
/// A convolution's window kernel may end with the tiling max pooling of
/// its result (after the convolution's epilogue), run image by image right
/// after the image's product, while its output is in cache. Where the
/// pooling starts in kernel.nodes, or 0.
size_t fusedPooling(const Graph &graph, const Kernel &kernel);

/// "loop", "matmul", ...: a kernel's kind as --emit=opt prints it.
const char *kernelKindName(Kernel::Kind kind);

/// `--emit=opt`: the graph grouped by kernel; `annotate(k, out)`, when
/// given, adds lines after kernel k (k = -1: before the first).
void printSchedule(const Graph &graph, const Schedule &schedule, std::string_view name,
                   std::ostream &out,
                   const std::function<void(int, std::ostream &)> &annotate = {});

} // namespace netc
