// Decisions.cpp - branch choices out of the f32 gradients, into the twin.
#include "compiler/transforms/Decisions.h"
#include "compiler/graph/Ops.h"

#include <string>

namespace netc {

namespace {

/// A max pooling whose windows do not overlap: each element is in one
/// window at most, so a mask over the image says which element each
/// window took.
bool disjointMaxPool(const Node &n) {
  WindowGeometry w = windowGeometry(n.op, n.attrs, nullptr);
  return w.sh >= w.kh && w.sw >= w.kw;
}

bool picksBranch(const Node &n) {
  switch (n.op) {
  case Op::Relu:
  case Op::Abs:
  case Op::Sign:
  case Op::Step:
  case Op::Max:
    return true;
  case Op::MaxPool2d:
  case Op::MaxPool2dGrad:
    return disjointMaxPool(n);
  default:
    return false;
  }
}

/// The image of a pooling node: its operand for the pooling and its
/// gradient alike.
const Shape &pooledImage(const Graph &g, const Node &n) { return g.shape(n.inputs[0]); }

/// The sum of each window: average pooling by `n`'s windows, times the
/// window's size.
ValueId windowSums(Graph &g, const Node &n, ValueId image) {
  WindowGeometry w = windowGeometry(n.op, n.attrs, nullptr);
  ValueId mean = g.add(Op::AvgPool2d, {image}, n.attrs, n.loc);
  return g.binary(Op::Mul, mean, g.constant(static_cast<double>(w.kh * w.kw), n.loc), n.loc);
}

/// dy spread over each window (every element of a window gets its
/// window's dy): average pooling's gradient, times the window's size.
ValueId spread(Graph &g, const Node &n, ValueId dy, const Shape &image) {
  WindowGeometry w = windowGeometry(n.op, n.attrs, nullptr);
  Attrs a = n.attrs;
  a.shape = image;
  ValueId share = g.add(Op::AvgPool2dGrad, {dy}, a, n.loc);
  return g.binary(Op::Mul, share, g.constant(static_cast<double>(w.kh * w.kw), n.loc), n.loc);
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
    case Op::MaxPool2dGrad: {
      // The gradient of ones marks each window's first maximum.
      Attrs to;
      to.shape = n.op == Op::MaxPool2d ? n.shape : g.shape(n.inputs[1]);
      ValueId ones = g.add(Op::BroadcastTo, {g.constant(1.0, n.loc)}, to, n.loc);
      d = g.add(Op::MaxPool2dGrad, {x, ones}, n.attrs, n.loc);
      break;
    }
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
    bool pooling = n.op == Op::MaxPool2d || n.op == Op::MaxPool2dGrad;
    Attrs a;
    a.name = "decision " + std::to_string(k);
    a.k = firstSlot + k;
    a.shape = pooling ? pooledImage(g, n) : n.shape;
    ValueId d = out.add(Op::Input, {}, a, n.loc);
    auto mul = [&](ValueId x, ValueId y) { return out.binary(Op::Mul, x, y, n.loc); };
    switch (n.op) {
    case Op::Relu:
    case Op::Abs:
      return mul(in[0], d);
    case Op::Max:
      return out.binary(Op::Add, in[1], mul(out.binary(Op::Sub, in[0], in[1], n.loc), d), n.loc);
    case Op::MaxPool2d:
      return windowSums(out, n, mul(in[0], d));
    case Op::MaxPool2dGrad:
      return mul(d, spread(out, n, in[1], a.shape));
    default: // sign, step
      return d;
    }
  });
}

} // namespace netc
