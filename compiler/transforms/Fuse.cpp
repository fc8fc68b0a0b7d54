// Fuse.cpp - greedy grouping of nodes into loop kernels.
#include "compiler/transforms/Fuse.h"
#include "compiler/graph/Printer.h"

#include <fmt/format.h>

#include <cassert>
#include <ostream>

namespace netc {

namespace {

bool isInlineLeaf(Op op) {
  return op == Op::Const || op == Op::HParam || op == Op::BatchSize;
}
bool isMemoryLeaf(Op op) {
  return op == Op::Input || op == Op::Param || op == Op::State;
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
  explicit Fuser(const Graph &g) : g_(g) {
    s_.kernelOf.assign(g.size(), -1);
    s_.materialized.assign(g.size(), false);
  }

  Schedule run() {
    for (size_t i = 0; i < g_.size(); ++i)
      place(static_cast<ValueId>(i));
    markMaterialized();
    return std::move(s_);
  }

private:
  int kernelOf(ValueId v) const { return s_.kernelOf[static_cast<size_t>(v)]; }

  void place(ValueId id) {
    const Node &n = g_.node(id);
    if (isInlineLeaf(n.op) || isMemoryLeaf(n.op))
      return;
    auto domain = loopDomain(g_, n);
    if (!domain) {
      Kernel::Kind kind = n.op == Op::MatMul                ? Kernel::Kind::MatMul
                          : opKind(n.op) == OpKind::Rows ? Kernel::Kind::Rows
                          : opKind(n.op) == OpKind::Gather ? Kernel::Kind::Gather
                          : n.op == Op::Stack ? Kernel::Kind::Stack
                          : n.op == Op::Slice ? Kernel::Kind::Slice
                                              : Kernel::Kind::View;
      start(kind, {}, id);
      return;
    }
    for (int k = static_cast<int>(s_.kernels.size()) - 1; k >= 0; --k) {
      const Kernel &kernel = s_.kernels[static_cast<size_t>(k)];
      if (kernel.kind != Kernel::Kind::Loop || !(kernel.domain == *domain))
        continue;
      if (canJoin(n, k))
        return join(k, id);
      break; // joining an earlier kernel of this domain could reorder effects
    }
    start(Kernel::Kind::Loop, *domain, id);
  }

  bool canJoin(const Node &n, int k) const {
    for (ValueId v : n.inputs) {
      int kv = kernelOf(v);
      if (kv > k)
        return false;
      if (kv == k && isReduction(g_.node(v).op))
        return false;
    }
    if (n.op != Op::Assign)
      return true;
    // The target is overwritten in this kernel: nothing may read it later,
    // and inside the kernel only at the same element (no broadcast reads).
    ValueId target = n.inputs[0];
    for (size_t u = 0; u < g_.size(); ++u) {
      const Node &user = g_.node(static_cast<ValueId>(u));
      for (ValueId v : user.inputs) {
        if (v != target || &user == &n)
          continue;
        int ku = s_.kernelOf[u];
        if (ku > k || ku < 0)
          return false;
        if (ku == k && !(g_.shape(target) == s_.kernels[static_cast<size_t>(k)].domain))
          return false;
      }
    }
    return true;
  }

  void start(Kernel::Kind kind, Shape domain, ValueId id) {
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
        bool loopUser = s_.kernelOf[i] >= 0 &&
                        s_.kernels[static_cast<size_t>(s_.kernelOf[i])].kind == Kernel::Kind::Loop;
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

  const Graph &g_;
  Schedule s_;
};

const char *kindName(Kernel::Kind k) {
  switch (k) {
  case Kernel::Kind::Loop: return "loop";
  case Kernel::Kind::MatMul: return "matmul";
  case Kernel::Kind::Rows: return "rows";
  case Kernel::Kind::Gather: return "gather";
  case Kernel::Kind::Stack: return "stack";
  case Kernel::Kind::Slice: return "slice";
  case Kernel::Kind::View: return "view";
  }
  return "?";
}

} // namespace

Schedule fuse(const Graph &graph) { return Fuser(graph).run(); }

void printSchedule(const Graph &g, const Schedule &s, std::string_view name,
                   std::ostream &out) {
  out << "graph " << name << " {\n";
  for (size_t i = 0; i < g.size(); ++i) {
    if (s.kernelOf[i] < 0)
      out << fmt::format("  %{} = {}\n", i, formatNode(g, static_cast<ValueId>(i)));
  }
  for (size_t k = 0; k < s.kernels.size(); ++k) {
    const Kernel &kernel = s.kernels[k];
    out << fmt::format("  kernel {} {}{} {{\n", k, kindName(kernel.kind),
                       kernel.kind == Kernel::Kind::Loop ? " " + kernel.domain.str() : "");
    for (ValueId v : kernel.nodes) {
      const Node &n = g.node(v);
      const char *mark = s.materialized[static_cast<size_t>(v)] ? "" : "  (register)";
      if (n.op == Op::Assign)
        out << fmt::format("    {}\n", formatNode(g, v));
      else
        out << fmt::format("    %{} = {}{}\n", v, formatNode(g, v), mark);
    }
    out << "  }\n";
  }
  for (const auto &o : g.outputs)
    out << fmt::format("  output {} = %{}\n", o.name, o.value);
  out << "}\n";
}

} // namespace netc
