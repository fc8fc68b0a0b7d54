// Decisions.cpp - branch choices out of the f32 gradients, into the twin.
#include "compiler/transforms/Decisions.h"

#include <string>

namespace netc {

namespace {

bool picksBranch(const Node &n) {
  switch (n.op) {
  case Op::Relu:
  case Op::Abs:
  case Op::Sign:
  case Op::Step:
  case Op::Max:
  case Op::MaxPool2d:
  case Op::MaxPool2dIndex:
    return true;
  default:
    return false;
  }
}

} // namespace

std::vector<ValueId> decisionNodes(const Graph &g) {
  std::vector<ValueId> nodes;
  for (size_t i = 0; i < g.size(); ++i)
    if (picksBranch(g.node(static_cast<ValueId>(i))))
      nodes.push_back(static_cast<ValueId>(i));
  return nodes;
}

void exposeDecisions(Graph &g, const std::vector<ValueId> &nodes) {
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node n = g.node(nodes[i]); // a copy: add() moves the nodes
    g.setPhase(n.phase);
    g.setOrigin(n.origin, n.loc);
    ValueId x = n.inputs[0], d = kNoValue;
    switch (n.op) {
    case Op::Relu:
    case Op::Step:
      // ReLU's gradient takes step(relu(x)), the same as step(x): one
      // tensor for both (common subexpressions merge).
      if (n.op == Op::Step && g.node(x).op == Op::Relu)
        x = g.node(x).inputs[0];
      d = g.unary(Op::Step, x, n.loc);
      break;
    case Op::Abs:
    case Op::Sign:
      d = g.unary(Op::Sign, x, n.loc);
      break;
    case Op::Max:
      d = g.unary(Op::Step, g.binary(Op::Sub, x, n.inputs[1], n.loc), n.loc);
      break;
    case Op::MaxPool2d:
      d = g.add(Op::MaxPool2dIndex, {x}, n.attrs, n.loc);
      break;
    case Op::MaxPool2dIndex: // its gradient's offsets: the choice itself
      d = nodes[i];
      break;
    default:
      break;
    }
    g.clearOrigin();
    g.outputs.push_back({"decision " + std::to_string(i), d});
  }
}

Graph freezeDecisions(const Graph &g, const std::vector<ValueId> &nodes, int64_t firstSlot) {
  std::vector<int64_t> decision(g.size(), -1);
  for (size_t i = 0; i < nodes.size(); ++i)
    decision[static_cast<size_t>(nodes[i])] = static_cast<int64_t>(i);
  return rebuild(g, [&](Graph &out, ValueId id, const std::vector<ValueId> &in) {
    int64_t k = decision[static_cast<size_t>(id)];
    if (k < 0)
      return kNoValue;
    const Node &n = g.node(id);
    Attrs a;
    a.name = "decision " + std::to_string(k);
    a.k = firstSlot + k;
    a.shape = n.shape; // a pooling's: one offset per window
    ValueId d = out.add(Op::Input, {}, a, n.loc);
    auto mul = [&](ValueId x, ValueId y) { return out.binary(Op::Mul, x, y, n.loc); };
    switch (n.op) {
    case Op::Relu:
    case Op::Abs:
      return mul(in[0], d);
    case Op::Max:
      return out.binary(Op::Add, in[1], mul(out.binary(Op::Sub, in[0], in[1], n.loc), d), n.loc);
    case Op::MaxPool2d:
      return out.add(Op::WindowTake, {in[0], d}, n.attrs, n.loc);
    default: // sign, step, a max pooling's offsets
      return d;
    }
  });
}

} // namespace netc
