// MemoryPlanner.h - where every materialized value of an entry point lives.
//
// Three kinds of memory, all allocated by the runtime:
//  - the persistent block (parameters, buffers, optimizer state), f32, laid out
//    once per model and shared by every entry point;
//  - the inputs, one pointer each, fed by the runtime;
//  - the scratch arena, in two regions: values whose size does not depend
//    on the batch (offsets in bytes), and values proportional to it (offsets
//    in bytes per padded batch element: the byte offset is offset * Npad,
//    Npad = N rounded up to 16, so every buffer stays 64-byte aligned).
// Scratch buffers whose lifetimes (in kernel order) do not overlap share
// memory; reshapes alias their operand.
#pragma once

#include <optional>

#include "compiler/sema/Model.h"
#include "compiler/transforms/Fuse.h"
#include "compiler/transforms/Optimizers.h"

#include <iosfwd>
#include <map>
#include <string>

namespace netc {

/// Offsets (in floats, 64-byte aligned) of the persistent tensors.
struct PersistentLayout {
  struct Entry {
    std::string name;
    Shape shape;
    int64_t offset = 0;
  };
  std::vector<Entry> params;
  std::vector<Entry> buffers;
  std::vector<Entry> states;
  int64_t totalFloats = 0;
};
PersistentLayout layoutPersistent(const Model &model, const std::vector<StateSpec> &states);

struct Buffer {
  enum class Region { None, Persistent, Input, Fixed, Batch, Table };
  Region region = Region::None;
  int64_t offset = 0; ///< floats (Persistent), index (Input), bytes (Fixed),
                      ///< bytes per padded N (Batch); Table: a constant of
                      ///< the module (the node's attrs.table)
  int64_t bytes = 0;  ///< Fixed: bytes; Batch: bytes per padded N
  int firstKernel = -1, lastKernel = -1;
  ValueId aliasOf = kNoValue; ///< a reshape's operand
};

/// Scratch a kernel uses while it runs: a shared part, then per chunk
/// (`chunks` are planned, kMaxChunks unless fewer can run), in elements of
/// the kernel's type, in this order: a convolution's im2col columns
/// (K = C·KH·KW rows of P = OH·OW), or for an implicit one its zero-padded
/// image (followed by a row of ones when the weight gradient sums the bias
/// gradient), or a packed product's panel (packedWeightProduct); for the weight
/// gradient, an image's output gradient transposed (P x O) with many
/// output channels, which lets the GEMM take its fast layout, or for an
/// implicit one on the padded grid (WindowKernel.cpp), then the image's dy
/// when the kernel computes it (Fuse.h: fusedPoolGradient); for the
/// weight gradient, its chunk's partial sum of the gradient (O·K; with the
/// bias gradient, O·(K + 1)); for a
/// loop kernel whose sums split (Fuse.h: loopSumsSplit), its chunk's
/// partial sums. The parts before the partial sums are indexed by the
/// chunk's slot (netc_rt_chunk_slot), not the chunk: the chunks a thread
/// runs reuse one copy, which stays in its cache; partial sums are the
/// chunk's, added up in chunk order.
struct Workspace {
  int64_t shared = 0; ///< once, before the chunks' parts: the input
                      ///< gradient's flipped weights (WindowKernel.cpp)
  int64_t columns = 0;
  int64_t transposed = 0;
  int64_t dy = 0;
  int64_t image = 0; ///< a convolution's result, pooled in its kernel (Fuse.h: pooledInWorkspace)
  int64_t partial = 0;
  int64_t chunks = kMaxChunks; ///< the most chunks (slots) that take a part
  /// The parts a thread's chunks share (by slot), before the partial sums.
  int64_t bySlot() const { return columns + transposed + dy + image; }
  int64_t perChunk() const { return bySlot() + partial; }
  int64_t total() const { return shared + perChunk() * chunks; }
};
Workspace kernelWorkspace(const Graph &graph, const Kernel &kernel);

/// A linear layer's forward product X·Wᵀ for a weight W of at least
/// kMaxChunks·8 rows (its chunks split them, MatMulKernel.cpp).
bool wideWeightProduct(const Graph &graph, const Node &product);
/// A wideWeightProduct with an epilogue (tiles inline), whose chunks pack W's rows 48 at a time
/// transposed (panels of kPanelColumns columns by the depth rounded up to 16) into their workspace
/// and multiply with the broadcast GEMM: with 32 SIMD registers and 16 floats to a vector
/// (AVX-512), when C has at least kPackedRows rows (packing W costs about what 10 of C's rows do;
/// an evaluation or a prediction of a few examples keeps the dot tiles). A chunk's panel is its
/// thread's (netc_rt_chunk_slot): the chunks one thread runs reuse one, which stays in L2.
bool packedWeightProduct(const Graph &graph, const Kernel &kernel);
constexpr int64_t kPanelColumns = 48;
constexpr int64_t kPackedRows = 64;

/// A power spectrum's workspace per chunk (its `columns`), in elements:
/// n vectors of real and n of imaginary parts for up to 16 lanes, and a
/// spare vector (SpectrumKernel.cpp).
inline int64_t spectrumWorkspace(int64_t n) { return 2 * n * 16 + 16; }

/// A stride-1 convolution or its weight gradient, or its input gradient
/// with padding below the kernel (as the convolution of dy with the
/// flipped, transposed weights), computed as an implicit GEMM: the rows
/// (c, kh, kw) of the image's columns are shifted runs of the zero-padded
/// image itself and the outputs lie on the padded image's grid
/// (WindowKernel.cpp); the padded image's offsets must fit an i32.
bool implicitConvolution(const Graph &graph, const Node &n, const Shape &weight);
/// A convolution's kernel computed by Winograd's F(2x2, 3x3) (WindowKernel.cpp;
/// bench/winograd_study.c measured it against the implicit GEMM: the course
/// CNN's blocks 1.0-1.5x faster), 3 x 3, stride 1, 16 or more channels in
/// the products' depth, either
/// - a convolution whose kernel ends with its 2 x 2 max pooling (and that
///   pooling's offsets), with only elementwise nodes on scalars and
///   per-channel values between, none read outside the kernel: each pooling
///   window is one 2 x 2 tile of outputs, so only the pooled positions are
///   computed, and the epilogue, ReLU and the window's maximum stay in
///   registers; or
/// - an input gradient, alone or with the pooling gradient that computes
///   its dy (Fuse.h: fusedPoolGradient): the correlation of dy, padded by
///   2 - padding, with the flipped weights, in tiles of 2 x 2 of dx; or
/// - a weight gradient of 16 or more input and output channels, alone or
///   with its bias gradient (Fuse.h: fusedBiasSum), dy read from memory:
///   dW = Gᵀ [sum over the tiles of (A dy Aᵀ) (.) (Bᵀ d B)] G, dy's 2 x 2
///   tiles against x's 4 x 4 ones (F(3 x 3, 2 x 2), the forward's
///   transforms transposed), the sum 16 products V[xi] (C x cells) ·
///   DY[xi] (cells x O) per image into the chunk's partial sums; tiles
///   over dy's rows and columns that may be nonzero (a tiling 2 x 2 max
///   pooling's gradient: its windows).
/// From 4 x 4 tiles of the padded input (x, or dy): 16 products
/// U[xi] (rows x depth) · V[xi] (depth x cells) instead of one of depth
/// 9·depth. The tiles lie on a grid `grid` = tiles per row + 1 wide (the
/// last column of each row dropped), read from four parity planes of the
/// padded input (even or odd rows by even or odd columns), so that element
/// (i, j) of every tile is one run: plane (i % 2, j % 2) from i / 2 · grid +
/// j / 2.
struct WinogradTiles {
  bool gradient = false;     ///< an input gradient
  bool weightGradient = false; ///< a weight gradient
  int64_t channels, outputs; ///< the products' depth and rows: C, O (O, C for a gradient)
  int64_t h, w;              ///< the input (x, or dy) unpadded
  int64_t top, left;         ///< its padding
  int64_t ph, pw;            ///< tiles: the pooled output, or dx's size / 2 rounded up
  int64_t grid;              ///< pw + 1: tile (ty, tx) is cell ty · grid + tx
  int64_t cells;             ///< ph · grid, rounded up to 16
  int64_t rows;              ///< of a parity plane: the last cell's tile included
  int64_t planes() const { return 4 * channels * rows * grid; }
  /// V[xi], M[xi] and DY[xi] lie spread() elements apart: whole 64-byte
  /// lines, an odd number of them, so that the 16 runs a transform reads or
  /// writes at once fall into 16 different sets of L1 (the course CNN's,
  /// 16 · 320 or 64 · 32 floats, were multiples of 4 KB: all in one set).
  static int64_t spread(int64_t elements) {
    int64_t lines = (elements + 15) / 16;
    return (lines | 1) * 16;
  }
  int64_t vStride() const { return spread(channels * cells); }
  int64_t mStride() const { return spread(outputs * cells); }
  int64_t transformed() const { return 16 * vStride(); }        ///< V
  int64_t products() const { return 16 * mStride(); }           ///< M
  int64_t weights() const { return 16 * outputs * channels; }   ///< U
  int64_t input() const { return channels * h * w; }            ///< dy computed in the kernel
  // A weight gradient's dy: oh x ow, transposed (a position's O channels
  // `stride` apart: O rounded up to 16), and DY = A dy Aᵀ.
  int64_t oh = 0, ow = 0, stride = 0;
  int64_t dyTransposed() const { return oh * ow * stride; }
  int64_t dyStride() const { return spread(cells * stride); }
  int64_t dyTransformed() const { return 16 * dyStride(); }
  /// The products' depth: the cells up to the last tile.
  int64_t depth() const { return (ph - 1) * grid + pw; }
  /// One of a weight gradient's 16 sums S[xi] (C x O).
  int64_t sum() const { return channels * outputs; }
  /// A chunk's partial sums: the 16 S[xi], then db's O.
  int64_t partialSums() const { return 16 * sum() + outputs; }
};
std::optional<WinogradTiles> winogradConvolution(const Graph &graph, const Kernel &kernel);
/// On by default; netc --no-winograd turns it off (the implicit GEMM).
void useWinogradConvolutions(bool on);

/// An implicit GEMM's zero-padded image: x, or dy for the input gradient
/// (padded by kernel - 1 - padding); its planes, where the image starts in
/// them, and where the windows start. A row's right padding is the next
/// row's left: rows of the image lie `width` apart with `left` =
/// max(left, right padding) zeros before each, so a window reaching past
/// its row reads the next row's zeros, and an output row's grid drops only
/// width - OW columns (none for the course CNN's padding 2 with 3 x 3
/// kernels; kw - 1 without padding). Window column 0 of
/// output 0 is at `shift` (left - the left padding); `extra` zeros after
/// the last plane take the last row's overreach.
struct PaddedImage {
  int64_t channels, height, width, top, left, shift, extra;
  /// The product's columns for outputs oh x ow on this grid (width to a
  /// row): up to the last output.
  int64_t columns(int64_t oh, int64_t ow) const { return (oh - 1) * width + ow; }
  /// The elements of the copy, its trailing zeros included.
  int64_t elements() const { return channels * height * width + extra; }
};
PaddedImage paddedImage(const Graph &graph, const Node &n, const Shape &weight);

/// Whether weight gradient `n` can sum its bias gradient as one more row
/// of the image, all ones (Fuse.cpp, WindowKernel.cpp): implicit, with the
/// ones after the padded image still in reach of the i32 row table.
bool biasFusible(const Graph &graph, const Node &n);

/// The weight gradient accumulated transposed, dWᵀ = col · dyᵀ (the
/// broadcast GEMM), else dW = dy · colᵀ (the dot GEMM). Measured on the
/// course CNN and LeNet: through im2col the broadcast GEMM wins with 64
/// output channels and more (3-20%), the dot GEMM with 16 and 32 (15% and
/// 3x); as implicit GEMMs the broadcast one wins from 16 (LeNet's second
/// convolution: 27% faster; tiles of 1 vector by 24 rows) and loses with 6
/// (2.2x slower), and with K = C·KH·KW below 16 (the course CNN's first
/// convolution, K = 9: dWᵀ's 9 rows are tiles of 8 and 1 row of one vector,
/// a broadcast load per multiply-add; the dot GEMM 10% faster even with dy
/// copied onto the grid).
inline bool transposedWeightGradient(const Shape &weight, bool implicit) {
  if (implicit)
    return weight.dims[0] >= 16 && weight.dims[1] * weight.dims[2] * weight.dims[3] >= 16;
  return weight.dims[0] >= 64;
}

/// How far apart an implicit weight gradient's transposed dy (P x O, the
/// broadcast GEMM's B) keeps its rows: O elements, one 64-byte line more
/// when O·4 bytes is an even number of lines. A tile reads the same 2-3
/// vectors of every row; with 128 channels (512 bytes a row) they fell
/// into 8 of L1's 64 sets, and the column block a row tile reads again
/// (18 KB) did not stay in L1 (the course CNN's conv4 weight gradient: 10%
/// faster padded; its conv2 and conv3, 32 and 64 channels: within noise).
inline int64_t transposedGradientStride(int64_t outputs) {
  return outputs % 32 == 0 ? outputs + 16 : outputs;
}

/// A weight gradient's kernel computing its dy (fusedPoolGradient) for the
/// dot GEMM on a grid without dropped columns: dy as computed is the grid
/// (no copy).
bool dyIsGrid(const Graph &graph, const Kernel &kernel);

struct MemoryPlan {
  std::vector<Buffer> buffers; ///< per node; Region::None if not in memory
  /// Per kernel: the byte offset of its workspace in the fixed region, or
  /// -1 for none.
  std::vector<int64_t> workspace;
  int64_t fixedBytes = 0;
  int64_t batchBytesPerN = 0;
};

/// Plans `graph`'s memory given its schedule and the persistent layout;
/// `elementBytes` is 4 (f32), or 8 for the double-precision twin.
MemoryPlan planMemory(const Graph &graph, const Schedule &schedule,
                      const PersistentLayout &persistent, int64_t elementBytes = 4);

/// `--emit=plan`: every buffer, its lifetime and the peak.
void printPlan(const Graph &graph, const Schedule &schedule, const MemoryPlan &plan,
               const PersistentLayout &persistent, std::string_view name, std::ostream &out);

} // namespace netc
