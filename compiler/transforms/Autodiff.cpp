// Autodiff.cpp - reverse-mode differentiation.
#include "compiler/transforms/Autodiff.h"
#include "compiler/graph/Ops.h"

#include <cassert>

namespace netc {

namespace {

std::vector<bool> dependsOn(const Graph &g, const std::vector<ValueId> &wrt) {
  std::vector<bool> depends(g.size(), false);
  for (ValueId v : wrt)
    depends[static_cast<size_t>(v)] = true;
  for (size_t i = 0; i < g.size(); ++i)
    for (ValueId in : g.node(static_cast<ValueId>(i)).inputs)
      if (depends[static_cast<size_t>(in)])
        depends[i] = true;
  return depends;
}

} // namespace

std::vector<ValueId> differentiate(Graph &g, ValueId loss,
                                   const std::vector<ValueId> &wrt, ValueId *missing) {
  assert(g.shape(loss).rank() == 0 && "the loss must be a scalar");
  const std::vector<bool> depends = dependsOn(g, wrt);
  std::vector<ValueId> adjoint(g.size(), kNoValue);
  adjoint[static_cast<size_t>(loss)] = g.constant(1.0, g.node(loss).loc);

  for (auto id = loss; id >= 0; --id) {
    ValueId dy = adjoint[static_cast<size_t>(id)];
    if (dy == kNoValue || !depends[static_cast<size_t>(id)])
      continue;
    OpKind kind = opKind(g.node(id).op);
    if (kind == OpKind::Leaf || kind == OpKind::Effect)
      continue;
    if (!isDifferentiable(g.node(id).op)) {
      assert(missing && "an op without a gradient rule is the caller's to report");
      *missing = id;
      return {};
    }
    Node node = g.node(id);
    g.setOrigin(node.op, node.loc); // its gradient's nodes point back to it
    std::vector<ValueId> contributions = gradientOf({g, node, id, dy});
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      ValueId in = node.inputs[i];
      ValueId c = contributions[i];
      if (c == kNoValue || !depends[static_cast<size_t>(in)])
        continue;
      if (!(g.shape(c) == g.shape(in))) {
        Attrs a;
        a.shape = g.shape(in);
        c = g.add(Op::SumTo, {c}, a, node.loc);
      }
      ValueId &acc = adjoint[static_cast<size_t>(in)];
      acc = acc == kNoValue ? c : g.binary(Op::Add, acc, c, node.loc);
    }
  }

  g.clearOrigin();
  std::vector<ValueId> grads;
  for (ValueId v : wrt) {
    ValueId a = adjoint[static_cast<size_t>(v)];
    if (a == kNoValue) {
      Attrs s;
      s.shape = g.shape(v);
      a = g.add(Op::BroadcastTo, {g.constant(0.0)}, s, g.node(v).loc);
    }
    grads.push_back(a);
  }
  return grads;
}

} // namespace netc
