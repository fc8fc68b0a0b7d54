// MemoryPlanner.cpp - liveness over kernels, then first-fit offsets.
#include "compiler/plan/MemoryPlanner.h"
#include "compiler/graph/Ops.h"
#include "compiler/graph/Printer.h"
#include "compiler/transforms/Fuse.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <limits>
#include <ostream>
#include <set>

namespace netc {

namespace {

constexpr int64_t kAlign = 64;
int64_t alignUp(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

/// The buffers placed in one region of the arena, for first-fit placement:
/// each an offset range and the kernels it lives over, kept in offset order
/// (no sort per placement) and dropped once no later buffer can overlap
/// them in time (linear in the model for a chain of layers).
class Arena {
public:
  /// The lowest offset, a multiple of `align`, where `size` bytes overlap
  /// no buffer alive during any of kernels [first, last); then placed there.
  int64_t place(int64_t size, int64_t align, int first, int last) {
    int64_t offset = 0;
    for (const Range &r : ranges_) {
      if (r.last < first || r.first > last)
        continue; // not alive at the same time
      if (r.offset >= offset + size)
        break;
      offset = std::max(offset, alignUp(r.offset + r.size, align));
    }
    add({offset, size, first, last});
    return offset;
  }
  struct Range {
    int64_t offset, size;
    int first, last;
  };
  /// A buffer placed by someone else.
  void add(const Range &r) {
    auto byOffset = [](const Range &a, const Range &b) {
      return std::pair(a.offset, a.size) < std::pair(b.offset, b.size);
    };
    ranges_.insert(std::upper_bound(ranges_.begin(), ranges_.end(), r, byOffset), r);
  }
  /// Forgets the buffers dead before kernel `kernel` (no buffer placed
  /// later starts before it). A pass over the placed buffers: done only
  /// once `kernel` has moved 256 kernels on.
  void retire(int kernel) {
    if (kernel < retired_ + 256)
      return;
    retired_ = kernel;
    std::erase_if(ranges_, [&](const Range &r) { return r.last < kernel; });
  }

private:
  std::vector<Range> ranges_;
  int retired_ = 0;
};

} // namespace

PersistentLayout layoutPersistent(const Model &model, const std::vector<StateSpec> &states) {
  PersistentLayout layout;
  int64_t offset = 0;
  auto place = [&](const std::string &name, const Shape &shape) {
    PersistentLayout::Entry e{name, shape, offset};
    offset += alignUp(shape.constNumel(), kAlign / 4);
    return e;
  };
  for (const auto &p : model.params)
    layout.params.push_back(place(p.name, p.shape));
  for (const auto &b : model.buffers)
    layout.buffers.push_back(place(b.name, b.shape));
  for (const auto &s : states)
    layout.states.push_back(place(s.name, s.shape));
  layout.totalFloats = offset;
  return layout;
}

PaddedImage paddedImage(const Graph &g, const Node &n, const Shape &weight) {
  WindowGeometry w = windowGeometry(n.op, n.attrs, &weight);
  const Shape &image = g.shape(n.inputs[0]); // x, or dy
  bool flipped = n.op == Op::Conv2dGradInput;
  int64_t top = flipped ? w.kh - 1 - w.pt : w.pt, bottom = flipped ? w.kh - 1 - w.pb : w.pb;
  int64_t left = flipped ? w.kw - 1 - w.pl : w.pl, right = flipped ? w.kw - 1 - w.pr : w.pr;
  int64_t iw = image.dims[3], ow = iw + left + right - w.kw + 1;
  int64_t gap = std::max(left, right);
  return {image.dims[1],
          image.dims[2] + top + bottom,
          std::max(iw + gap, ow),
          top,
          gap,
          gap - left,
          gap};
}

// Measured: the course CNN's input gradients with 64 and 32 input channels
// ran 18% and 8% faster flipped through im2col, with 16 as fast; as
// implicit GEMMs (no im2col) flipped is faster for all of them.
bool implicitConvolution(const Graph &g, const Node &n, const Shape &weight) {
  WindowGeometry w = windowGeometry(n.op, n.attrs, &weight);
  if (w.sh != 1 || w.sw != 1)
    return false;
  if (n.op == Op::Conv2dGradInput && // flipped: dy padded by kernel - 1 - padding
      !(w.pt < w.kh && w.pb < w.kh && w.pl < w.kw && w.pr < w.kw))
    return false;
  PaddedImage p = paddedImage(g, n, weight); // its offsets in the i32 row table
  return p.elements() < (int64_t{1} << 31);
}

namespace {

bool winogradOn = true; ///< netc --no-winograd: false

/// The tiles of a 3 x 3 stride-1 Winograd kernel over an input of `h` x `w`
/// padded by `top` and `left`, with ph x pw tiles.
WinogradTiles winogradTiles(int64_t channels, int64_t outputs, int64_t h, int64_t w, int64_t top,
                            int64_t left, int64_t ph, int64_t pw) {
  WinogradTiles t;
  t.channels = channels;
  t.outputs = outputs;
  t.h = h;
  t.w = w;
  t.top = top;
  t.left = left;
  t.ph = ph;
  t.pw = pw;
  t.grid = pw + 1;
  t.cells = (ph * t.grid + 15) / 16 * 16;
  t.rows = (t.cells + t.grid + 1 + t.grid - 1) / t.grid; // the last cell reads grid + 1 on
  return t;
}

/// An input gradient by Winograd: alone, or with the pooling gradient (and
/// its prologue) computing its dy, nothing after.
std::optional<WinogradTiles> winogradGradient(const Graph &g, const Kernel &kernel) {
  const Node &n = g.node(kernel.nodes.front());
  const Shape &weight = g.shape(n.inputs[1]);
  WindowGeometry w = windowGeometry(n.op, n.attrs, &weight);
  // Products of dx's C rows by dy's O channels deep: the course CNN's
  // input gradients with C = 64 and 32 took 1.33x and 1.1x less time than
  // the implicit GEMM's, with C = 16 (O = 32) 1.04-1.14x more.
  if (w.kh != 3 || w.kw != 3 || w.sh != 1 || w.sw != 1 || weight.dims[1] < 32 ||
      weight.dims[0] < 16 || !implicitConvolution(g, n, weight))
    return std::nullopt;
  size_t pool = fusedPoolGradient(g, kernel);
  size_t end = pool ? takeGradientPrologue(g, kernel, pool) : 1;
  if (kernel.nodes.size() != end)
    return std::nullopt;
  const Shape &dy = g.shape(n.inputs[0]);
  auto t = winogradTiles(weight.dims[0], weight.dims[1], dy.dims[2], dy.dims[3], 2 - w.pt, 2 - w.pl,
                         (n.shape.dims[2] + 1) / 2, (n.shape.dims[3] + 1) / 2);
  t.gradient = true;
  return t;
}

/// A weight gradient by Winograd: alone or with its bias gradient, dy
/// from memory.
std::optional<WinogradTiles> winogradWeightGradient(const Graph &g, const Kernel &kernel) {
  const Node &n = g.node(kernel.nodes.front());
  WindowGeometry w = windowGeometry(n.op, n.attrs, &n.shape);
  if (w.kh != 3 || w.kw != 3 || w.sh != 1 || w.sw != 1 || n.shape.dims[0] < 16 ||
      n.shape.dims[1] < 16 || !implicitConvolution(g, n, n.shape))
    return std::nullopt;
  if (kernel.nodes.size() != (fusedBiasSum(g, kernel) != kNoValue ? 2 : 1))
    return std::nullopt;
  const Shape &x = g.shape(n.inputs[0]), &dy = g.shape(n.inputs[1]);
  // Tiles over dy's rows and columns that may be nonzero: all of them, or a
  // tiling 2 x 2 max pooling gradient's windows (zeros after them).
  int64_t ph = (dy.dims[2] + 1) / 2, pw = (dy.dims[3] + 1) / 2;
  const Node &source = g.node(n.inputs[1]);
  if (source.op == Op::WindowTakeGrad && tilingMaxPool(source)) {
    WindowGeometry p = windowGeometry(source.op, source.attrs, nullptr);
    const Shape &windows = g.shape(source.inputs[1]);
    if (p.kh == 2 && p.kw == 2) {
      ph = windows.dims[2];
      pw = windows.dims[3];
    }
  }
  auto t =
      winogradTiles(n.shape.dims[1], n.shape.dims[0], x.dims[2], x.dims[3], w.pt, w.pl, ph, pw);
  t.weightGradient = true;
  t.oh = dy.dims[2];
  t.ow = dy.dims[3];
  // Unpadded (transposedGradientStride's extra line: within noise here).
  t.stride = (t.outputs + 15) / 16 * 16;
  return t;
}

} // namespace

void useWinogradConvolutions(bool on) { winogradOn = on; }

std::optional<WinogradTiles> winogradConvolution(const Graph &g, const Kernel &kernel) {
  if (!winogradOn || kernel.kind != Kernel::Kind::Window)
    return std::nullopt;
  const Node &conv = g.node(kernel.nodes.front());
  if (conv.op == Op::Conv2dGradInput)
    return winogradGradient(g, kernel);
  if (conv.op == Op::Conv2dGradWeight)
    return winogradWeightGradient(g, kernel);
  size_t pool = fusedPooling(g, kernel);
  if (conv.op != Op::Conv2d || !pool)
    return std::nullopt;
  const Node &pooling = g.node(kernel.nodes[pool]);
  const Shape &weight = g.shape(conv.inputs[1]);
  WindowGeometry w = windowGeometry(Op::Conv2d, conv.attrs, &weight);
  WindowGeometry p = windowGeometry(Op::MaxPool2d, pooling.attrs, nullptr);
  // Depth C products: with one input channel (the course CNN's first
  // block) 2.5x slower than the implicit GEMM, with 16 1.06x faster.
  if (w.kh != 3 || w.kw != 3 || w.sh != 1 || w.sw != 1 || p.kh != 2 || p.kw != 2 ||
      !tilingMaxPool(pooling) || weight.dims[1] < 16)
    return std::nullopt;
  // After the pooling only its offsets; before it elementwise nodes on the
  // kernel's values, scalars and per-channel values, read by nothing else.
  if (kernel.nodes.size() != pool + 1 + (fusedPoolIndex(g, kernel) ? 1 : 0))
    return std::nullopt;
  int64_t outputs = weight.dims[0];
  // The pooling's input among them: read by nothing outside the kernel
  // below, as pooledInWorkspace asks (without a second scan of the graph).
  const std::set<ValueId> before(kernel.nodes.begin(),
                                 kernel.nodes.begin() + static_cast<ptrdiff_t>(pool));
  if (!before.count(pooling.inputs[0]))
    return std::nullopt;
  for (size_t i = 1; i < pool; ++i) {
    const Node &n = g.node(kernel.nodes[i]);
    if (opKind(n.op) != OpKind::Elementwise)
      return std::nullopt;
    for (ValueId v : n.inputs) {
      const Shape &s = g.shape(v);
      if (!before.count(v) && s.rank() != 0 && !(s.rank() == 3 && s.dims[0] == outputs))
        return std::nullopt;
    }
  }
  const std::set<ValueId> inside(kernel.nodes.begin(), kernel.nodes.end());
  for (size_t i = 0; i < g.size(); ++i)
    if (!inside.count(static_cast<ValueId>(i)))
      for (ValueId v : g.node(static_cast<ValueId>(i)).inputs)
        if (before.count(v))
          return std::nullopt;
  for (const auto &o : g.outputs)
    if (before.count(o.value))
      return std::nullopt;
  const Shape &x = g.shape(conv.inputs[0]);
  return winogradTiles(weight.dims[1], outputs, x.dims[2], x.dims[3], w.pt, w.pl,
                       pooling.shape.dims[2], pooling.shape.dims[3]);
}

bool biasFusible(const Graph &g, const Node &n) {
  if (!implicitConvolution(g, n, n.shape))
    return false;
  PaddedImage p = paddedImage(g, n, n.shape);
  const Shape &dy = g.shape(n.inputs[1]);
  int64_t ones = p.columns(dy.dims[2], dy.dims[3]);
  return p.elements() + ones < (int64_t{1} << 31);
}

bool dyIsGrid(const Graph &g, const Kernel &kernel) {
  if (!fusedPoolGradient(g, kernel))
    return false;
  const Node &n = g.node(kernel.nodes.front());
  const Shape &dy = g.shape(n.inputs[1]);
  return !transposedWeightGradient(n.shape, true) && paddedImage(g, n, n.shape).width == dy.dims[3];
}

bool wideWeightProduct(const Graph &g, const Node &product) {
  if (product.op != Op::MatMul || !product.attrs.transB || product.attrs.transA)
    return false;
  const Node &weight = g.node(product.inputs[1]);
  return weight.op == Op::Param && weight.shape.dims.front() >= kMaxChunks * 8;
}

bool packedWeightProduct(const Graph &g, const Kernel &kernel) {
  return kernel.kind == Kernel::Kind::MatMul && kernel.nodes.size() > 1 &&
         wideWeightProduct(g, g.node(kernel.nodes.front()));
}

Workspace kernelWorkspace(const Graph &g, const Kernel &kernel) {
  if (packedWeightProduct(g, kernel)) { // a panel per chunk of whole panels
    Workspace w;
    const Shape &weight = g.node(g.node(kernel.nodes.front()).inputs[1]).shape;
    w.columns = kPanelColumns * ((weight.dims.back() + 15) / 16 * 16);
    w.chunks = std::min(kMaxChunks, (weight.dims.front() + kPanelColumns - 1) / kPanelColumns);
    return w;
  }
  if (loopSumsSplit(g, kernel)) { // a partial sum per chunk for every sum_to
    Workspace w;
    for (ValueId id : kernel.nodes)
      if (g.node(id).op == Op::SumTo)
        w.partial += g.shape(id).constNumel();
    return w;
  }
  if (kernel.kind == Kernel::Kind::Spectrum) {
    Workspace w;
    w.columns = spectrumWorkspace(g.node(kernel.nodes.front()).attrs.window[0]);
    return w;
  }
  if (kernel.kind != Kernel::Kind::Window)
    return {};
  const Node &n = g.node(kernel.nodes.front());
  if (n.op == Op::MaxPool2d && pooledInWorkspace(g, kernel)) { // a plane of its input
    const Shape &x = g.shape(n.inputs[0]);
    Workspace w;
    w.image = x.dims[2] * x.dims[3];
    return w;
  }
  const Shape *weight = nullptr, *windows = nullptr;
  switch (n.op) {
  case Op::Conv2d:
    weight = &g.shape(n.inputs[1]);
    windows = &n.shape;
    break;
  case Op::Conv2dGradInput:
    weight = &g.shape(n.inputs[1]);
    windows = &g.shape(n.inputs[0]);
    break;
  case Op::Conv2dGradWeight:
    weight = &n.shape;
    windows = &g.shape(n.inputs[1]);
    break;
  default:
    return {}; // pooling: direct loops
  }
  if (auto t = winogradConvolution(g, kernel)) { // (WindowKernel.cpp)
    Workspace w;
    if (t->weightGradient) { // no U; dy transposed and DY; the products' sums, then db's
      w.columns = t->planes() + t->transformed();
      w.transposed = t->dyTransposed() + t->dyTransformed();
      w.partial = t->partialSums();
      return w;
    }
    w.shared = t->weights();
    w.columns = t->planes() + t->transformed();
    w.image = t->products();
    w.dy = t->gradient && fusedPoolGradient(g, kernel) ? t->input() : 0;
    return w;
  }
  int64_t k = weight->dims[1] * weight->dims[2] * weight->dims[3];
  int64_t outputs = weight->dims[0];
  WindowGeometry geo = windowGeometry(n.op, n.attrs, weight);
  Workspace w;
  if (implicitConvolution(g, n, *weight)) {
    // The zero-padded image, copied even when unpadded: the GEMM reads it
    // as ~3·channels streams advancing slowly, which the prefetchers do not
    // follow from memory (the course CNN's first input gradient, reading dy
    // in place: 2.4x slower).
    PaddedImage p = paddedImage(g, n, *weight);
    w.columns = p.elements();
    if (n.op == Op::Conv2dGradInput)
      w.shared = weight->dims[1] * outputs * geo.kh * geo.kw; // the flipped weights
    if (n.op == Op::Conv2d && pooledInWorkspace(g, kernel))
      w.image = outputs * windows->dims[2] * windows->dims[3];
    if (n.op == Op::Conv2dGradWeight) {
      int64_t columns = p.columns(windows->dims[2], windows->dims[3]);
      // dy on the grid: O values a grid position (transposed, in a row of
      // transposedGradientStride(O))
      int64_t perPosition =
          transposedWeightGradient(*weight, true) ? transposedGradientStride(outputs) : outputs;
      w.transposed = dyIsGrid(g, kernel) ? 0 : perPosition * columns;
      if (fusedPoolGradient(g, kernel)) // dy, computed here
        w.dy = outputs * windows->dims[2] * windows->dims[3];
      bool bias = fusedBiasSum(g, kernel) != kNoValue; // a row of ones after the image
      w.columns += bias ? columns : 0;
      w.partial = outputs * (k + bias);
    }
    return w;
  }
  int64_t positions = windows->dims[2] * windows->dims[3];
  w.columns = k * positions;
  if (n.op == Op::Conv2dGradWeight) {
    if (transposedWeightGradient(*weight, false))
      w.transposed = positions * outputs;
    w.partial = outputs * k;
  }
  return w;
}

MemoryPlan planMemory(const Graph &g, const Schedule &s, const PersistentLayout &persistent,
                      int64_t elementBytes) {
  MemoryPlan plan;
  plan.buffers.resize(g.size());
  // Lifetimes in kernel order.
  for (size_t i = 0; i < g.size(); ++i) {
    if (!s.materialized[i])
      continue;
    Buffer &b = plan.buffers[i];
    b.firstKernel = b.lastKernel = s.kernelOf[i];
  }
  for (size_t i = 0; i < g.size(); ++i)
    for (ValueId v : g.node(static_cast<ValueId>(i)).inputs)
      if (s.materialized[static_cast<size_t>(v)])
        plan.buffers[static_cast<size_t>(v)].lastKernel =
            std::max(plan.buffers[static_cast<size_t>(v)].lastKernel, s.kernelOf[i]);
  for (const auto &o : g.outputs)
    if (s.materialized[static_cast<size_t>(o.value)])
      plan.buffers[static_cast<size_t>(o.value)].lastKernel = static_cast<int>(s.kernels.size());
  // A reshape aliases its operand, which must then live as long as it.
  for (size_t i = g.size(); i-- > 0;) {
    const Node &n = g.node(static_cast<ValueId>(i));
    if (n.op != Op::Reshape)
      continue;
    Buffer &src = plan.buffers[static_cast<size_t>(n.inputs[0])];
    src.lastKernel = std::max(src.lastKernel, plan.buffers[i].lastKernel);
  }

  // Buffers are placed in graph order, first-fit among those alive at the
  // same time. starts[i]: the first kernel of any buffer from i on (those
  // dead before it are retired).
  std::vector<int> starts(g.size() + 1, std::numeric_limits<int>::max());
  for (size_t i = g.size(); i-- > 0;)
    starts[i] = std::min(starts[i + 1], s.materialized[i] ? plan.buffers[i].firstKernel
                                                          : std::numeric_limits<int>::max());
  Arena fixed, batch;
  std::vector<Arena::Range> fixedRanges; // every fixed buffer, for the workspaces
  for (size_t i = 0; i < g.size(); ++i) {
    if (!s.materialized[i])
      continue;
    fixed.retire(starts[i]);
    batch.retire(starts[i]);
    const Node &n = g.node(static_cast<ValueId>(i));
    Buffer &b = plan.buffers[i];
    switch (n.op) {
    case Op::Param:
      b.region = Buffer::Region::Persistent;
      b.offset = persistent.params[static_cast<size_t>(n.attrs.k)].offset;
      continue;
    case Op::State:
      b.region = Buffer::Region::Persistent;
      b.offset = persistent.states[static_cast<size_t>(n.attrs.k)].offset;
      continue;
    case Op::Buffer:
      b.region = Buffer::Region::Persistent;
      b.offset = persistent.buffers[static_cast<size_t>(n.attrs.k)].offset;
      continue;
    case Op::Input:
      b.region = Buffer::Region::Input;
      b.offset = n.attrs.k;
      continue;
    case Op::Table:
      b.region = Buffer::Region::Table;
      continue;
    case Op::Reshape: {
      ValueId src = n.inputs[0];
      while (g.node(src).op == Op::Reshape)
        src = g.node(src).inputs[0];
      b = plan.buffers[static_cast<size_t>(src)];
      b.aliasOf = src;
      continue;
    }
    default:
      break;
    }
    bool perBatch = n.shape.hasBatch();
    b.region = perBatch ? Buffer::Region::Batch : Buffer::Region::Fixed;
    b.bytes = alignUp(n.shape.constNumel() * elementBytes, perBatch ? elementBytes : kAlign);
    // Batch offsets are scaled by Npad (a multiple of NETC_BATCH_PAD), so
    // 4-byte units already give 64-byte aligned addresses.
    static_assert(NETC_BATCH_PAD * 4 % kAlign == 0, "Npad keeps batch buffers aligned");
    b.offset = (perBatch ? batch : fixed)
                   .place(b.bytes, perBatch ? elementBytes : kAlign, b.firstKernel, b.lastKernel);
    if (!perBatch)
      fixedRanges.push_back({b.offset, b.bytes, b.firstKernel, b.lastKernel});
    int64_t &top = perBatch ? plan.batchBytesPerN : plan.fixedBytes;
    top = std::max(top, b.offset + b.bytes);
  }
  // Kernel workspaces: fixed-size buffers that live for their kernel only,
  // placed kernel by kernel among the fixed buffers alive there.
  plan.workspace.assign(s.kernels.size(), -1);
  std::stable_sort(fixedRanges.begin(), fixedRanges.end(),
                   [](const Arena::Range &a, const Arena::Range &b) { return a.first < b.first; });
  Arena alive;
  size_t next = 0;
  for (size_t k = 0; k < s.kernels.size(); ++k) {
    int64_t elements = kernelWorkspace(g, s.kernels[k]).total();
    if (elements == 0)
      continue;
    for (; next < fixedRanges.size() && fixedRanges[next].first <= static_cast<int>(k); ++next)
      alive.add(fixedRanges[next]);
    alive.retire(static_cast<int>(k));
    int64_t bytes = alignUp(elements * elementBytes, kAlign);
    int64_t offset = alive.place(bytes, kAlign, static_cast<int>(k), static_cast<int>(k));
    plan.workspace[k] = offset;
    plan.fixedBytes = std::max(plan.fixedBytes, offset + bytes);
  }
  plan.fixedBytes = alignUp(plan.fixedBytes, kAlign);
  return plan;
}

void printPlan(const Graph &g, const Schedule &s, const MemoryPlan &plan,
               const PersistentLayout &persistent, std::string_view name, std::ostream &out) {
  out << "plan " << name << " {\n";
  for (size_t i = 0; i < g.size(); ++i) {
    const Buffer &b = plan.buffers[i];
    if (b.region == Buffer::Region::None)
      continue;
    std::string where;
    switch (b.region) {
    case Buffer::Region::Persistent:
      where = fmt::format("persistent +{}f", b.offset);
      break;
    case Buffer::Region::Input:
      where = fmt::format("input #{}", b.offset);
      break;
    case Buffer::Region::Table:
      where = "constant";
      break;
    case Buffer::Region::Fixed:
      where = fmt::format("scratch +{} ({} B)", b.offset, b.bytes);
      break;
    case Buffer::Region::Batch:
      where = fmt::format("scratch batch +{}*Npad ({}*Npad B)", b.offset, b.bytes);
      break;
    default:
      break;
    }
    if (b.aliasOf != kNoValue)
      where += fmt::format(", alias of %{}", b.aliasOf);
    out << fmt::format("  %{} {}{}: {}, kernels {}..{}\n", i,
                       dtypeName(g.node(static_cast<ValueId>(i)).dtype),
                       g.shape(static_cast<ValueId>(i)).str(), where, b.firstKernel, b.lastKernel);
  }
  out << fmt::format("  persistent: {} floats ({} B)\n", persistent.totalFloats,
                     persistent.totalFloats * 4);
  out << fmt::format("  scratch peak: {} B + {} B * Npad\n", plan.fixedBytes, plan.batchBytesPerN);
  out << "}\n";
}

} // namespace netc
