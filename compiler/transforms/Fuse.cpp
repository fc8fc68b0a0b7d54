// Fuse.cpp - greedy grouping of nodes into loop kernels.
#include "compiler/transforms/Fuse.h"
#include "compiler/graph/Ops.h"
#include "compiler/graph/Printer.h"
#include "compiler/plan/MemoryPlanner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <map>
#include <ostream>
#include <set>

namespace netc {

namespace {

// Tables are in memory too: constant globals of the module.
bool isMemoryLeaf(Op op) {
  return op == Op::Input || op == Op::Param || op == Op::State || op == Op::Buffer ||
         op == Op::Table;
}
bool isReduction(Op op) { return op == Op::Sum || op == Op::SumTo; }

/// The iteration space of a node that can live in a loop kernel.
std::optional<Shape> loopDomain(const Graph &g, const Node &n) {
  switch (opKind(n.op)) {
  case OpKind::Elementwise:
    return n.shape;
  case OpKind::Reduction:
    return g.shape(n.inputs[0]);
  case OpKind::Effect:
    return g.shape(n.inputs[1]);
  default:
    break;
  }
  if (n.op == Op::BroadcastTo)
    return n.shape;
  return std::nullopt;
}

class Fuser {
public:
  Fuser(const Graph &g, bool epilogues, const std::vector<bool> &sunk)
      : g_(g), epilogues_(epilogues), sunk_(sunk) {
    s_.kernelOf.assign(g.size(), -1);
    s_.materialized.assign(g.size(), false);
    users_.resize(g.size());
    for (size_t u = 0; u < g.size(); ++u)
      for (ValueId v : g.node(static_cast<ValueId>(u)).inputs)
        users_[static_cast<size_t>(v)].push_back(static_cast<ValueId>(u));
  }

  Schedule run() {
    deferred_.assign(g_.size(), false);
    for (size_t i = 0; i < g_.size(); ++i) {
      auto id = static_cast<ValueId>(i);
      // relu's mask and the recomputed copies: sunk to where they are used
      if (g_.node(id).op == Op::Step || (i < sunk_.size() && sunk_[i]))
        deferred_[i] = true;
      else
        placeWithDeferred(id);
    }
    for (size_t i = 0; i < g_.size(); ++i) // used by no kernel (an output)
      if (deferred_[i]) {
        deferred_[i] = false;
        place(static_cast<ValueId>(i));
      }
    if (epilogues_) {
      absorbEpilogues();
      absorbBiasGradients();
      absorbTakeGradientLoops();
      absorbPoolGradients();
      absorbGradientLoops();
      absorbPoolings();
      absorbPoolingLoops();
      absorbPoolIndices();
    }
    markMaterialized();
    return std::move(s_);
  }

private:
  int kernelOf(ValueId v) const { return s_.kernelOf[static_cast<size_t>(v)]; }
  bool deferred(ValueId v) const { return deferred_[static_cast<size_t>(v)]; }

  // A cheap mask (step) is computed in the kernel of its first user when
  // that is a loop over its shape, rather than where its operand is
  // computed (greedy placement put the mask of a ReLU in the forward
  // pass's kernel, which then had to write it to memory for the backward
  // pass): it then stays in registers. Likewise a value recomputed for
  // its user (Recompute.h), with the deferred values it is computed from.
  void placeWithDeferred(ValueId id) {
    const Node &n = g_.node(id);
    std::vector<ValueId> sunk;
    if (auto domain = loopDomain(g_, n))
      sinkDeferredOperands(id, *domain, sunk);
    else
      for (ValueId v : n.inputs)
        if (deferred(v)) {
          deferred_[static_cast<size_t>(v)] = false;
          placeWithDeferred(v); // an ordinary node, before its user
        }
    if (sunk.empty())
      return place(id);
    sinking_ = sunk;
    place(id);
    sinking_.clear();
    Kernel &k = s_.kernels[static_cast<size_t>(kernelOf(id))];
    k.nodes.insert(k.nodes.end() - 1, sunk.begin(), sunk.end());
    for (ValueId v : sunk)
      s_.kernelOf[static_cast<size_t>(v)] = kernelOf(id);
  }

  /// The deferred operands of `id` (and theirs) over `domain`, appended to
  /// `sunk` operands first; those of another shape placed before `id`.
  void sinkDeferredOperands(ValueId id, const Shape &domain, std::vector<ValueId> &sunk) {
    for (ValueId v : g_.node(id).inputs) {
      if (!deferred(v))
        continue;
      deferred_[static_cast<size_t>(v)] = false;
      if (!(g_.shape(v) == domain)) {
        placeWithDeferred(v);
        continue;
      }
      sinkDeferredOperands(v, domain, sunk);
      sunk.push_back(v);
    }
  }

  void place(ValueId id) {
    const Node &n = g_.node(id);
    if (isInlineLeaf(n.op) || isMemoryLeaf(n.op))
      return;
    auto domain = loopDomain(g_, n);
    if (!domain) {
      Kernel::Kind kind = n.op == Op::MatMul               ? Kernel::Kind::MatMul
                          : opKind(n.op) == OpKind::Rows   ? Kernel::Kind::Rows
                          : opKind(n.op) == OpKind::Gather ? Kernel::Kind::Gather
                          : opKind(n.op) == OpKind::Window ? Kernel::Kind::Window
                          : n.op == Op::PowerSpectrum      ? Kernel::Kind::Spectrum
                          : n.op == Op::Stack              ? Kernel::Kind::Stack
                          : n.op == Op::Slice              ? Kernel::Kind::Slice
                          : n.op == Op::Transpose || n.op == Op::Frames || n.op == Op::FramesGrad
                              ? Kernel::Kind::Layout
                                                           : Kernel::Kind::View;
      start(kind, {}, id);
      return;
    }
    // Only the last loop kernel of this domain: joining an earlier one
    // could reorder effects.
    if (auto last = lastLoop_.find(domain->dims);
        last != lastLoop_.end() && canJoin(n, last->second))
      return join(last->second, id);
    start(Kernel::Kind::Loop, *domain, id);
  }

  bool canJoin(const Node &n, int k) const {
    if (s_.kernels[static_cast<size_t>(k)].nodes.size() >= kMaxLoopNodes)
      return false;
    // Values sunk into this node's kernel (not placed yet) need their own
    // operands there.
    std::vector<ValueId> operands = n.inputs;
    for (ValueId v : sinking_)
      operands.insert(operands.end(), g_.node(v).inputs.begin(), g_.node(v).inputs.end());
    for (ValueId w : operands) {
      int kw = kernelOf(w);
      if (kw > k)
        return false;
      if (kw == k && isReduction(g_.node(w).op))
        return false;
    }
    if (n.op != Op::Assign)
      return true;
    // The target is overwritten in this kernel: nothing may read it later,
    // and inside the kernel only at the same element (no broadcast reads).
    ValueId target = n.inputs[0];
    for (ValueId u : users_[static_cast<size_t>(target)]) {
      if (&g_.node(u) == &n)
        continue;
      int ku = s_.kernelOf[static_cast<size_t>(u)];
      if (ku > k || ku < 0)
        return false;
      if (ku == k && !(g_.shape(target) == s_.kernels[static_cast<size_t>(k)].domain))
        return false;
    }
    return true;
  }

  // A loop kernel right after a matrix product, over the product's shape,
  // becomes its epilogue: applied to each tile of C while it is in
  // registers (bias, activation, its gradient mask, an optimizer update),
  // so C need not make a trip through memory. When the loop also sums (a
  // bias gradient), only the elementwise part before the first sum moves;
  // the sum reads it from memory.
  // A convolution's next loop kernel, over its result's shape, made of
  // cheap elementwise ops on the result, same-shaped values, per-channel
  // values ([C, 1, 1]: a bias) and scalars: its leading part is applied to
  // the convolution's GEMM tiles while they are in registers (the bias and
  // the activation), so the convolution's raw result need not go to memory.
  // Likewise after a tiling max pooling's gradient (no per-channel values):
  // an activation's gradient before it (one whose mask did not move onto
  // the pooled gradient: Simplify.cpp) is applied to each window's gradient
  // as it is written.
  void absorbWindowEpilogue(size_t l) {
    size_t k = beforePastViews(l); // past a bias's reshape
    Kernel &conv = s_.kernels[k];
    Kernel &loop = s_.kernels[l];
    if (conv.kind != Kernel::Kind::Window || conv.nodes.size() != 1)
      return;
    const Node &c = g_.node(conv.nodes.front());
    bool pooling = c.op == Op::WindowTakeGrad && tilingMaxPool(c);
    if ((c.op != Op::Conv2d && !pooling) || !(loop.domain == c.shape))
      return;
    Shape channel{{c.shape.dims[1], 1, 1}};
    size_t count = 0;
    for (ValueId id : loop.nodes) {
      const Node &n = g_.node(id);
      if (!joinsEpilogue(n.op) || n.op == Op::Assign || isReduction(n.op))
        break;
      bool ok = true;
      for (ValueId v : n.inputs) {
        const Shape &sh = g_.shape(v);
        ok = ok && (sh.rank() == 0 || sh == c.shape || (sh == channel && !pooling));
      }
      if (!ok)
        break;
      ++count;
    }
    for (size_t i = 0; i < count; ++i) // operands in views between are aliases: ready
      for (ValueId v : g_.node(loop.nodes[i]).inputs)
        if (kernelOf(v) > static_cast<int>(k) && kernelOf(v) != static_cast<int>(l) &&
            s_.kernels[static_cast<size_t>(kernelOf(v))].kind != Kernel::Kind::View)
          count = 0;
    for (size_t i = 0; i < count; ++i) {
      conv.nodes.push_back(loop.nodes[i]);
      s_.kernelOf[static_cast<size_t>(loop.nodes[i])] = static_cast<int>(k);
    }
    loop.nodes.erase(loop.nodes.begin(), loop.nodes.begin() + static_cast<std::ptrdiff_t>(count));
  }

  void absorbEpilogues() {
    for (size_t l = 1; l < s_.kernels.size(); ++l) {
      if (s_.kernels[l].kind != Kernel::Kind::Loop)
        continue;
      absorbWindowEpilogue(l);
      if (s_.kernels[l].nodes.empty()) {
        s_.kernels.erase(s_.kernels.begin() + static_cast<std::ptrdiff_t>(l));
        for (int &owner : s_.kernelOf)
          if (owner > static_cast<int>(l))
            --owner;
        --l;
        continue;
      }
      // The latest product the loop reads; kernels in between may not be
      // skipped by assigns, and every operand must be ready at the product.
      int k = -1;
      for (ValueId id : s_.kernels[l].nodes)
        for (ValueId v : g_.node(id).inputs)
          if (kernelOf(v) >= 0 &&
              s_.kernels[static_cast<size_t>(kernelOf(v))].kind == Kernel::Kind::MatMul &&
              s_.kernels[static_cast<size_t>(kernelOf(v))].nodes.front() == v)
            k = std::max(k, kernelOf(v));
      if (k < 0)
        continue;
      Kernel &mm = s_.kernels[static_cast<size_t>(k)];
      Kernel &loop = s_.kernels[l];
      size_t count = epiloguePrefix(mm.nodes.front(), loop, l == static_cast<size_t>(k) + 1);
      for (size_t i = 0; i < count; ++i)
        for (ValueId v : g_.node(loop.nodes[i]).inputs)
          if (kernelOf(v) > k && kernelOf(v) != static_cast<int>(l))
            count = 0;
      for (size_t i = 0; i < count; ++i) {
        mm.nodes.push_back(loop.nodes[i]);
        s_.kernelOf[static_cast<size_t>(loop.nodes[i])] = k;
      }
      loop.nodes.erase(loop.nodes.begin(), loop.nodes.begin() + static_cast<std::ptrdiff_t>(count));
      if (!loop.nodes.empty())
        continue;
      s_.kernels.erase(s_.kernels.begin() + static_cast<std::ptrdiff_t>(l));
      for (int &owner : s_.kernelOf)
        if (owner > static_cast<int>(l))
          --owner;
      --l;
    }
  }

  // A convolution's bias gradient, the sum of dy over images and positions
  // (a loop kernel of that one sum_to), joins the implicit weight gradient
  // of the same dy that follows it (past views and window kernels, which
  // neither read the sum nor assign): the weight gradient's GEMM sums it
  // as one more row of the image, all ones (WindowKernel.cpp), so dy is
  // read once. Views of the sum between the two move after it.
  void absorbBiasGradients() {
    for (size_t w = 1; w < s_.kernels.size(); ++w) {
      const Kernel &grad = s_.kernels[w];
      if (grad.kind != Kernel::Kind::Window || grad.nodes.size() != 1)
        continue;
      const Node &n = g_.node(grad.nodes.front());
      if (n.op != Op::Conv2dGradWeight || !biasFusible(g_, n))
        continue;
      size_t l = w - 1;
      while (l > 0 && (s_.kernels[l].kind == Kernel::Kind::View ||
                       s_.kernels[l].kind == Kernel::Kind::Window))
        --l;
      const Kernel &loop = s_.kernels[l];
      if (loop.kind != Kernel::Kind::Loop || loop.nodes.size() != 1)
        continue;
      ValueId sum = loop.nodes.front();
      const Node &sn = g_.node(sum);
      if (sn.op != Op::SumTo || sn.inputs[0] != n.inputs[1] ||
          !(sn.shape == Shape{{n.shape.dims[0], 1, 1}}))
        continue;
      // The kernels from l on: the views that read the sum after the
      // weight gradient (now with the sum), the other views before it.
      std::vector<Kernel> before, after;
      std::set<ValueId> moved{sum};
      bool windowReads = false;
      for (size_t k = l + 1; k < w; ++k) {
        const Kernel &between = s_.kernels[k];
        bool reads = std::any_of(between.nodes.begin(), between.nodes.end(), [&](ValueId v) {
          const auto &in = g_.node(v).inputs;
          return std::any_of(in.begin(), in.end(), [&](ValueId i) { return moved.count(i) > 0; });
        });
        windowReads = windowReads || (reads && between.kind == Kernel::Kind::Window);
        if (reads)
          moved.insert(between.nodes.begin(), between.nodes.end());
        (reads ? after : before).push_back(between);
      }
      if (windowReads)
        continue;
      Kernel fused = s_.kernels[w];
      fused.nodes.push_back(sum);
      std::vector<Kernel> order = std::move(before);
      order.push_back(std::move(fused));
      order.insert(order.end(), after.begin(), after.end());
      s_.kernels.erase(s_.kernels.begin() + static_cast<std::ptrdiff_t>(l),
                       s_.kernels.begin() + static_cast<std::ptrdiff_t>(w + 1));
      s_.kernels.insert(s_.kernels.begin() + static_cast<std::ptrdiff_t>(l), order.begin(),
                        order.end());
      renumber(l);
      w = l + order.size() - 1;
    }
  }

  // A tiling max pooling's gradient (with its prologue) right before the
  // implicit weight gradient reading it as dy, and read by nothing else
  // (but the bias gradient the weight gradient sums): the weight gradient
  // computes it image by image into its workspace (WindowKernel.cpp), so
  // dy (the course CNN's first block: 35 MB) is neither written nor read.
  void absorbPoolGradients() {
    for (size_t w = 1; w < s_.kernels.size(); ++w) {
      Kernel &grad = s_.kernels[w];
      const Kernel &pool = s_.kernels[w - 1];
      if (grad.kind != Kernel::Kind::Window || pool.kind != Kernel::Kind::Window)
        continue;
      const Node &n = g_.node(grad.nodes.front());
      const Node &p = g_.node(pool.nodes.front());
      bool weights = n.op == Op::Conv2dGradWeight;
      if (p.op != Op::WindowTakeGrad || !tilingMaxPool(p) || fusedPoolGradient(g_, grad) != 0)
        continue;
      ValueId dx = poolGradientResult(g_, pool, 0);
      if (!(weights ? implicitConvolution(g_, n, n.shape) && dx == n.inputs[1]
                    : n.op == Op::Conv2dGradInput && dx == n.inputs[0] && unpaddedInputGradient(n)))
        continue;
      // The input gradient's copy of dy is dy (no padding): the pooling
      // gradient writes it there too, and to memory for the weight
      // gradient. Into a weight gradient only if its values are read
      // there or by the weight gradient alone (dy then not stored).
      if (weights) {
        bool alone = true;
        for (ValueId v : pool.nodes)
          for (ValueId u : users_[static_cast<size_t>(v)])
            alone = alone &&
                    (kernelOf(u) == static_cast<int>(w - 1) || kernelOf(u) == static_cast<int>(w));
        for (const auto &o : g_.outputs)
          alone =
              alone && std::find(pool.nodes.begin(), pool.nodes.end(), o.value) == pool.nodes.end();
        if (!alone)
          continue;
      }
      grad.nodes.insert(grad.nodes.end(), pool.nodes.begin(), pool.nodes.end());
      s_.kernels.erase(s_.kernels.begin() + static_cast<std::ptrdiff_t>(w - 1));
      renumber(w - 1);
      --w;
    }
  }

  // The loop kernel computing a tiling window_take_grad's dy (a ReLU's
  // mask, moved onto the pooled gradient: Simplify.cpp), elementwise over
  // the windows' shape, per-channel values and scalars, read by nothing
  // else: the gradient computes it window by window where it read dy
  // (WindowKernel.cpp), so it is neither written nor read back. Its nodes
  // follow the gradient's node, before any epilogue (of the image's shape:
  // the windows must not be 1 x 1 for the two to be told apart).
  void absorbTakeGradientLoops() {
    for (size_t w = 1; w < s_.kernels.size(); ++w) {
      Kernel &take = s_.kernels[w];
      if (take.kind != Kernel::Kind::Window || take.nodes.size() != 1)
        continue;
      const Node &n = g_.node(take.nodes.front());
      if (n.op != Op::WindowTakeGrad || !tilingMaxPool(n))
        continue;
      const Shape &dy = g_.shape(n.inputs[1]);
      // Past views (they alias: ready either way) and the offsets' own
      // kernel (it reads x, not the loop; absorbPoolIndices moves it up):
      // a ReLU after the pooling has its mask computed before them.
      size_t l = beforePastViews(w, true);
      const Kernel &loop = s_.kernels[l];
      if (dy == n.shape || loop.kind != Kernel::Kind::Loop || !(loop.domain == dy) ||
          loop.nodes.back() != n.inputs[1] || !elementwiseOver(loop, dy, take.nodes.front()))
        continue;
      take.nodes.insert(take.nodes.begin() + 1, loop.nodes.begin(), loop.nodes.end());
      s_.kernels.erase(s_.kernels.begin() + static_cast<std::ptrdiff_t>(l));
      renumber(l);
      --w;
    }
  }

  // A tiling max pooling's offsets (max_pool2d_index, for its gradient)
  // join the kernel computing the pooling of the same x and windows, at its
  // end: the pooling finds each window's maximum and where it is together
  // (WindowKernel.cpp), reading x once, in cache when the pooling is fused
  // there too.
  void absorbPoolIndices() {
    for (size_t w = 1; w < s_.kernels.size(); ++w) {
      const Kernel &own = s_.kernels[w];
      if (own.kind != Kernel::Kind::Window || own.nodes.size() != 1)
        continue;
      ValueId index = own.nodes.front();
      const Node &n = g_.node(index);
      if (n.op != Op::MaxPool2dIndex || !tilingMaxPool(n))
        continue;
      int at = -1;
      for (ValueId u : users_[static_cast<size_t>(n.inputs[0])])
        if (g_.node(u).op == Op::MaxPool2d && attrKey(g_.node(u)) == attrKey(n))
          at = kernelOf(u);
      if (at < 0 || at >= static_cast<int>(w) ||
          s_.kernels[static_cast<size_t>(at)].kind != Kernel::Kind::Window)
        continue;
      s_.kernels[static_cast<size_t>(at)].nodes.push_back(index);
      s_.kernels.erase(s_.kernels.begin() + static_cast<std::ptrdiff_t>(w));
      renumber(static_cast<size_t>(at));
      --w;
    }
  }

  // The loop kernel computing dy right before an implicit weight gradient
  // accumulated by the dot GEMM (fewer than 16 output channels: batch
  // norm's input gradient before LeNet-5's first convolution), elementwise
  // ops on tensors of dy's shape, per-channel values and scalars, read by
  // nothing else: the weight gradient computes dy image by image onto its
  // grid (WindowKernel.cpp), where it copied it from memory, so dy is
  // neither written nor read back.
  void absorbGradientLoops() {
    for (size_t w = 1; w < s_.kernels.size(); ++w) {
      Kernel &grad = s_.kernels[w];
      if (grad.kind != Kernel::Kind::Window || grad.nodes.size() != 1)
        continue;
      const Node &n = g_.node(grad.nodes.front());
      if (n.op != Op::Conv2dGradWeight || !implicitConvolution(g_, n, n.shape) ||
          transposedWeightGradient(n.shape, true))
        continue;
      size_t l = beforePastViews(w); // views alias: ready either way
      const Kernel &loop = s_.kernels[l];
      const Shape &dy = g_.shape(n.inputs[1]);
      if (loop.kind != Kernel::Kind::Loop || !(loop.domain == dy) ||
          loop.nodes.back() != n.inputs[1] || !elementwiseOver(loop, dy, grad.nodes.front()))
        continue;
      grad.nodes.insert(grad.nodes.end(), loop.nodes.begin(), loop.nodes.end());
      s_.kernels.erase(s_.kernels.begin() + static_cast<std::ptrdiff_t>(l));
      renumber(l);
      --w;
    }
  }

  // The loop kernel computing a tiling max pooling's input (batch norm's
  // normalisation and ReLU before LeNet-5's poolings), elementwise: the
  // pooling moves up to it (it reads nothing else) and computes its input
  // plane by plane and pools it while it is in cache, instead of reading it
  // back from memory; the plane goes to memory only if read elsewhere
  // (Fuse.h: pooledInWorkspace).
  void absorbPoolingLoops() {
    for (size_t w = 1; w < s_.kernels.size(); ++w) {
      const Kernel &pool = s_.kernels[w];
      if (pool.kind != Kernel::Kind::Window || pool.nodes.size() != 1)
        continue;
      const Node &n = g_.node(pool.nodes.front());
      int l = kernelOf(n.inputs[0]);
      if (n.op != Op::MaxPool2d || !tilingMaxPool(n) || l < 0)
        continue;
      const Kernel &loop = s_.kernels[static_cast<size_t>(l)];
      const Shape &x = g_.shape(n.inputs[0]);
      if (loop.kind != Kernel::Kind::Loop || !(loop.domain == x) ||
          loop.nodes.back() != n.inputs[0] || !elementwiseOver(loop, x, std::nullopt))
        continue;
      Kernel fused = pool;
      fused.nodes.insert(fused.nodes.end(), loop.nodes.begin(), loop.nodes.end());
      s_.kernels[static_cast<size_t>(l)] = std::move(fused);
      s_.kernels.erase(s_.kernels.begin() + static_cast<std::ptrdiff_t>(w));
      renumber(static_cast<size_t>(l));
      --w;
    }
  }

  /// A window kernel of a max pooling's offsets alone.
  bool lonePoolIndex(const Kernel &k) const {
    return k.kind == Kernel::Kind::Window && k.nodes.size() == 1 &&
           g_.node(k.nodes.front()).op == Op::MaxPool2dIndex;
  }

  /// The kernel before kernel k, past views (and, with `poolIndices`,
  /// kernels of a max pooling's offsets alone).
  size_t beforePastViews(size_t k, bool poolIndices = false) const {
    --k;
    while (k > 0 && (s_.kernels[k].kind == Kernel::Kind::View ||
                     (poolIndices && lonePoolIndex(s_.kernels[k]))))
      --k;
    return k;
  }

  /// Whether `loop` is elementwise ops (not dropout's, which need their
  /// element's index) on values of `shape`, per channel ([C, 1, 1]) and
  /// scalars; with `onlyReader`, none read outside it but by that node.
  bool elementwiseOver(const Kernel &loop, const Shape &shape,
                       std::optional<ValueId> onlyReader) const {
    std::set<ValueId> inside(loop.nodes.begin(), loop.nodes.end());
    Shape channel{{shape.dims[1], 1, 1}};
    for (ValueId id : loop.nodes) {
      const Node &n = g_.node(id);
      if (opKind(n.op) != OpKind::Elementwise || n.op == Op::DropoutTrain)
        return false;
      for (ValueId v : n.inputs) {
        const Shape &sh = g_.shape(v);
        if (!(sh.rank() == 0 || sh == shape || sh == channel))
          return false;
      }
      if (!onlyReader)
        continue;
      for (ValueId u : users_[static_cast<size_t>(id)])
        if (!inside.count(u) && u != *onlyReader)
          return false;
      for (const auto &o : g_.outputs)
        if (o.value == id)
          return false;
    }
    return true;
  }

  /// An implicit input gradient whose padded dy is dy as it is (the
  /// flipped convolution's padding kernel - 1 - padding is 0).
  bool unpaddedInputGradient(const Node &n) const {
    const Shape &weight = g_.shape(n.inputs[1]), &dy = g_.shape(n.inputs[0]);
    if (!implicitConvolution(g_, n, weight))
      return false;
    PaddedImage p = paddedImage(g_, n, weight);
    return p.height == dy.dims[2] && p.width == dy.dims[3] && p.shift == 0 && p.extra == 0;
  }

  /// kernelOf again for the kernels from `first` on (after kernels moved).
  void renumber(size_t first) {
    for (size_t k = first; k < s_.kernels.size(); ++k)
      for (ValueId v : s_.kernels[k].nodes)
        s_.kernelOf[static_cast<size_t>(v)] = static_cast<int>(k);
  }

  // A tiling max pooling right after the implicit convolution whose result
  // (its epilogue's last value: the ReLU) it pools: the convolution's
  // kernel pools each image right after computing it (WindowKernel.cpp),
  // so the result is read back from cache, not memory.
  void absorbPoolings() {
    for (size_t c0 = 0; c0 + 1 < s_.kernels.size(); ++c0) {
      size_t k = c0 + 1; // the next kernel with code (views alias)
      while (k + 1 < s_.kernels.size() && s_.kernels[k].kind == Kernel::Kind::View)
        ++k;
      Kernel &conv = s_.kernels[c0];
      const Kernel &pool = s_.kernels[k];
      if (conv.kind != Kernel::Kind::Window || pool.kind != Kernel::Kind::Window)
        continue;
      const Node &c = g_.node(conv.nodes.front());
      const Node &p = g_.node(pool.nodes.front());
      if (c.op != Op::Conv2d || !implicitConvolution(g_, c, g_.shape(c.inputs[1])) ||
          p.op != Op::MaxPool2d || !tilingMaxPool(p) || p.inputs[0] != conv.nodes.back())
        continue;
      conv.nodes.insert(conv.nodes.end(), pool.nodes.begin(), pool.nodes.end());
      s_.kernels.erase(s_.kernels.begin() + static_cast<std::ptrdiff_t>(k));
      renumber(c0);
    }
  }

  // How many leading nodes of `loop` can be `product`'s epilogue: cheap
  // elementwise ops over C's shape reading C and other values at the same
  // element, rows of C's width (a bias) or scalars; assigns only when the
  // loop has no sum and no kernel lies between, never to what the product
  // reads (nodes after them read the new value in either kernel).
  size_t epiloguePrefix(ValueId product, const Kernel &loop, bool adjacent) const {
    const Node &p = g_.node(product);
    const Shape &domain = p.shape;
    if (!(loop.domain == domain) || domain.rank() != 2)
      return 0;
    // A small C stays in cache anyway; its own copy of the tiles would cost
    // more compile time than the pass it saves. But a forward product
    // through a wide weight packs it only with its tiles inline
    // (MemoryPlanner.h: packedWeightProduct), so it takes its epilogue at
    // any width: a hidden layer of 240 (under 256 values per example)
    // multiplied through the dot tiles at 115-123 GFLOP/s, packed at 143.
    if (!bigTensor(domain) && !wideWeightProduct(g_, p))
      return 0;
    bool sums = std::any_of(loop.nodes.begin(), loop.nodes.end(),
                            [&](ValueId id) { return isReduction(g_.node(id).op); });
    size_t count = 0;
    for (ValueId id : loop.nodes) {
      const Node &n = g_.node(id);
      if (!joinsEpilogue(n.op))
        return count;
      if (n.op == Op::Assign && (sums || !adjacent || !(g_.shape(n.inputs[0]) == domain) ||
                                 n.inputs[0] == p.inputs[0] || n.inputs[0] == p.inputs[1]))
        return 0;
      for (ValueId v : n.inputs) {
        const Shape &s = g_.shape(v);
        bool row = s.rank() == 1 && s.dims[0] == domain.dims[1];
        if (!(s.rank() == 0 || s == domain || row))
          return sums ? count : 0;
      }
      ++count;
    }
    return count;
  }

  void start(Kernel::Kind kind, Shape domain, ValueId id) {
    if (kind == Kernel::Kind::Loop)
      lastLoop_[domain.dims] = static_cast<int>(s_.kernels.size());
    s_.kernels.push_back({kind, std::move(domain), {id}});
    s_.kernelOf[static_cast<size_t>(id)] = static_cast<int>(s_.kernels.size() - 1);
  }

  void join(int k, ValueId id) {
    s_.kernels[static_cast<size_t>(k)].nodes.push_back(id);
    s_.kernelOf[static_cast<size_t>(id)] = k;
  }

  // In memory: persistent and input leaves, every value read by another
  // kernel or by a non-loop kernel, reductions, and the outputs.
  void markMaterialized() {
    for (size_t i = 0; i < g_.size(); ++i) {
      const Node &n = g_.node(static_cast<ValueId>(i));
      if (isMemoryLeaf(n.op) || isReduction(n.op))
        s_.materialized[i] = true;
      for (ValueId v : n.inputs) {
        if (isInlineLeaf(g_.node(v).op))
          continue;
        bool otherKernel = kernelOf(v) != s_.kernelOf[i];
        // dy of a weight gradient computed in its kernel: in the workspace
        if (!otherKernel && n.op == Op::Conv2dGradWeight && v == n.inputs[1])
          continue;
        // dy of a max pooling's gradient computed by its prologue: in registers
        if (!otherKernel && n.op == Op::WindowTakeGrad && v == n.inputs[1])
          continue;
        // a pooling's input computed in its kernel (a convolution's result,
        // a loop's plane) and read nowhere else: in the workspace
        if (!otherKernel && (n.op == Op::MaxPool2d || n.op == Op::MaxPool2dIndex) &&
            pooledInWorkspace(g_, s_.kernels[static_cast<size_t>(s_.kernelOf[i])]))
          continue;
        // Loop kernels and matrix-product epilogues keep values in registers.
        const Kernel *user =
            s_.kernelOf[i] >= 0 ? &s_.kernels[static_cast<size_t>(s_.kernelOf[i])] : nullptr;
        // (A window op after a window kernel's front, fused into it, reads
        // its operands from memory.)
        bool loopUser =
            user &&
            (user->kind == Kernel::Kind::Loop ||
             ((user->kind == Kernel::Kind::MatMul || user->kind == Kernel::Kind::Window) &&
              user->nodes.front() != static_cast<ValueId>(i) && opKind(n.op) != OpKind::Window));
        if (otherKernel || !loopUser)
          s_.materialized[static_cast<size_t>(v)] = true;
      }
      if (n.op == Op::Reshape)
        s_.materialized[i] = true;
    }
    for (const auto &o : g_.outputs)
      if (!isInlineLeaf(g_.node(o.value).op))
        s_.materialized[static_cast<size_t>(o.value)] = true;
  }

  std::vector<bool> deferred_;   ///< masks not placed yet (placeWithDeferred)
  std::vector<ValueId> sinking_; ///< the masks the node being placed takes along
  const Graph &g_;
  bool epilogues_;
  const std::vector<bool> &sunk_; ///< per node: deferred like a mask (may be empty)
  Schedule s_;
  /// Per value: the nodes that read it (once per operand).
  std::vector<std::vector<ValueId>> users_;
  /// Per loop domain (its dims): the last loop kernel over it, while nodes
  /// are placed.
  std::map<std::vector<int64_t>, int> lastLoop_;
};

} // namespace

bool isInlineLeaf(Op op) { return op == Op::Const || op == Op::HParam || op == Op::BatchSize; }

bool bigTensor(const Shape &shape) {
  return shape.constNumel() >= (shape.hasBatch() ? 256 : 65536);
}

const char *kernelKindName(Kernel::Kind k) {
  switch (k) {
  case Kernel::Kind::Loop:
    return "loop";
  case Kernel::Kind::MatMul:
    return "matmul";
  case Kernel::Kind::Rows:
    return "rows";
  case Kernel::Kind::Gather:
    return "gather";
  case Kernel::Kind::Window:
    return "window";
  case Kernel::Kind::Stack:
    return "stack";
  case Kernel::Kind::Slice:
    return "slice";
  case Kernel::Kind::Layout:
    return "layout";
  case Kernel::Kind::Spectrum:
    return "spectrum";
  case Kernel::Kind::View:
    return "view";
  }
  return "?";
}

Schedule fuse(const Graph &graph, bool epilogues, const std::vector<bool> &sunk) {
  return Fuser(graph, epilogues, sunk).run();
}

ValueId fusedBiasSum(const Graph &g, const Kernel &kernel) {
  if (kernel.kind != Kernel::Kind::Window || kernel.nodes.size() < 2 ||
      g.node(kernel.nodes.front()).op != Op::Conv2dGradWeight ||
      g.node(kernel.nodes[1]).op != Op::SumTo)
    return kNoValue;
  return kernel.nodes[1];
}

namespace {

/// Where a window kernel whose front is a `front` holds an `op` after it, or 0.
size_t fusedAfter(const Graph &g, const Kernel &kernel, Op front, Op op) {
  if (kernel.kind != Kernel::Kind::Window || g.node(kernel.nodes.front()).op != front)
    return 0;
  for (size_t i = 1; i < kernel.nodes.size(); ++i)
    if (g.node(kernel.nodes[i]).op == op)
      return i;
  return 0;
}

} // namespace

size_t fusedLoop(const Graph &g, const Kernel &kernel) {
  if (kernel.kind != Kernel::Kind::Window || kernel.nodes.size() < 2)
    return 0;
  Op front = g.node(kernel.nodes.front()).op;
  if ((front != Op::Conv2dGradWeight && front != Op::MaxPool2d) ||
      opKind(g.node(kernel.nodes[1]).op) != OpKind::Elementwise)
    return 0;
  return 1;
}

size_t fusedPooling(const Graph &g, const Kernel &kernel) {
  return fusedAfter(g, kernel, Op::Conv2d, Op::MaxPool2d);
}

size_t fusedPoolGradient(const Graph &g, const Kernel &kernel) {
  if (size_t at = fusedAfter(g, kernel, Op::Conv2dGradWeight, Op::WindowTakeGrad))
    return at;
  return fusedAfter(g, kernel, Op::Conv2dGradInput, Op::WindowTakeGrad);
}

size_t takeGradientPrologue(const Graph &g, const Kernel &kernel, size_t at) {
  const Node &n = g.node(kernel.nodes[at]);
  if (n.op != Op::WindowTakeGrad)
    return at + 1;
  const Shape &dy = g.shape(n.inputs[1]);
  size_t end = at + 1;
  while (end < kernel.nodes.size() && !(dy == n.shape) && g.shape(kernel.nodes[end]) == dy)
    ++end;
  return end;
}

ValueId poolGradientResult(const Graph &g, const Kernel &kernel, size_t at) {
  size_t first = takeGradientPrologue(g, kernel, at);
  return first < kernel.nodes.size() ? kernel.nodes.back() : kernel.nodes[at];
}

bool pooledInWorkspace(const Graph &g, const Kernel &kernel) {
  size_t at = fusedPooling(g, kernel);
  bool computed = kernel.kind == Kernel::Kind::Window &&
                  g.node(kernel.nodes.front()).op == Op::MaxPool2d && fusedLoop(g, kernel);
  if (!at && !computed)
    return false;
  ValueId x = g.node(kernel.nodes[at]).inputs[0];
  const std::set<ValueId> inside(kernel.nodes.begin(), kernel.nodes.end());
  for (size_t i = 0; i < g.size(); ++i) {
    const auto &in = g.node(static_cast<ValueId>(i)).inputs;
    if (!inside.count(static_cast<ValueId>(i)) && std::find(in.begin(), in.end(), x) != in.end())
      return false;
  }
  return std::none_of(g.outputs.begin(), g.outputs.end(),
                      [&](const auto &o) { return o.value == x; });
}

size_t fusedPoolIndex(const Graph &g, const Kernel &kernel) {
  if (kernel.kind != Kernel::Kind::Window || kernel.nodes.size() < 2 ||
      g.node(kernel.nodes.back()).op != Op::MaxPool2dIndex)
    return 0;
  return kernel.nodes.size() - 1;
}

size_t loopBlockStart(const Graph &g, const Kernel &k) {
  const Shape &d = k.domain;
  const std::set<ValueId> local(k.nodes.begin(), k.nodes.end()); // not a scan per operand
  std::vector<const Shape *> others; // every other shape the kernel touches
  for (ValueId id : k.nodes) {
    const Node &n = g.node(id);
    if (n.op == Op::SumTo)
      others.push_back(&n.shape);
    for (ValueId v : n.inputs)
      if (!local.count(v) && !isInlineLeaf(g.node(v).op) && g.shape(v).rank() != 0 && !(g.shape(v) == d))
        others.push_back(&g.shape(v));
  }
  if (others.empty())
    return d.rank();
  size_t start = d.rank();
  int64_t size = 1;
  while (start > 1) {
    size_t dim = start - 1;
    bool reduced = d.dims[dim] != kBatch;
    for (const Shape *s : others) {
      size_t offset = d.rank() - s->rank();
      reduced = reduced && (dim < offset || s->dims[dim - offset] == 1);
    }
    if (!reduced)
      break;
    start = dim;
    size *= d.dims[dim];
  }
  return size >= 64 ? start : d.rank();
}

bool loopSumsSplit(const Graph &g, const Kernel &k) {
  if (k.kind != Kernel::Kind::Loop || k.domain.rank() < 2)
    return false;
  bool sums = false;
  for (ValueId id : k.nodes) {
    const Node &n = g.node(id);
    if (n.op == Op::Sum || n.op == Op::Assign)
      return false;
    if (n.op != Op::SumTo)
      continue;
    sums = true;
    size_t offset = k.domain.rank() - n.shape.rank();
    if (n.shape.hasBatch() || (offset == 0 && n.shape.dims[0] != 1))
      return false; // the target varies over the first dimension
  }
  return sums && loopBlockStart(g, k) < k.domain.rank();
}

void printSchedule(const Graph &g, const Schedule &s, std::string_view name, std::ostream &out,
                   const std::function<void(int, std::ostream &)> &annotate) {
  out << "graph " << name << " {\n";
  for (size_t i = 0; i < g.size(); ++i) {
    if (s.kernelOf[i] < 0)
      out << fmt::format("  %{} = {}\n", i, formatNode(g, static_cast<ValueId>(i)));
  }
  if (annotate)
    annotate(-1, out);
  for (size_t k = 0; k < s.kernels.size(); ++k) {
    const Kernel &kernel = s.kernels[k];
    std::string how = kernel.kind == Kernel::Kind::Loop ? " " + kernel.domain.str() : "";
    if (winogradConvolution(g, kernel))
      how = " winograd";
    out << fmt::format("  kernel {} {}{} {{\n", k, kernelKindName(kernel.kind), how);
    for (ValueId v : kernel.nodes) {
      const Node &n = g.node(v);
      const char *mark = s.materialized[static_cast<size_t>(v)] ? "" : "  (register)";
      if (n.op == Op::Assign)
        out << fmt::format("    {}\n", formatNode(g, v));
      else
        out << fmt::format("    %{} = {}{}\n", v, formatNode(g, v), mark);
    }
    out << "  }\n";
    if (annotate)
      annotate(static_cast<int>(k), out);
  }
  for (const auto &o : g.outputs)
    out << fmt::format("  output {} = %{}\n", o.name, o.value);
  out << "}\n";
}

} // namespace netc
