// Simplify.cpp - rewrite rules applied while copying the graph.
//
// Every node is re-emitted through emit(), which first tries the rewrite
// rules (whose results are emitted recursively, so they are simplified too)
// and then looks the node up in the CSE table.
#include "compiler/transforms/Simplify.h"
#include "compiler/graph/Ops.h"
#include "compiler/graph/Interpreter.h"

#include <fmt/format.h>

#include <cstring>
#include <functional>
#include <unordered_map>

namespace netc {

namespace {

class Simplifier {
public:
  explicit Simplifier(const Graph &in) : in_(in) {}

  Graph run() {
    std::vector<ValueId> map(in_.size(), kNoValue);
    for (size_t i = 0; i < in_.size(); ++i) {
      Node n = in_.node(static_cast<ValueId>(i));
      for (ValueId &v : n.inputs)
        v = map[static_cast<size_t>(v)];
      // What a rewrite makes belongs to the node's phase and origin.
      out_.setPhase(n.phase);
      out_.setOrigin(n.origin, n.loc);
      std::string label = n.label;
      map[i] = emit(std::move(n));
      if (!label.empty())
        out_.setLabel(map[i], label);
    }
    for (const auto &o : in_.outputs)
      out_.outputs.push_back({o.name, map[static_cast<size_t>(o.value)]});
    for (ValueId e : in_.effects)
      out_.effects.push_back(map[static_cast<size_t>(e)]);
    return removeDeadNodes(out_);
  }

private:
  // ---- queries on the graph being built -----------------------------------

  const Node &at(ValueId v) const { return out_.node(v); }
  const Shape &shape(ValueId v) const { return out_.shape(v); }
  bool isConst(ValueId v, double value) const {
    return at(v).op == Op::Const && at(v).attrs.value == value;
  }
  bool isConst(ValueId v) const { return at(v).op == Op::Const; }
  double constOf(ValueId v) const { return at(v).attrs.value; }

  // ---- emission ----------------------------------------------------------

  ValueId make(Op op, std::vector<ValueId> inputs, Attrs attrs = {}, ast::Loc loc = {}) {
    std::vector<const Shape *> shapes;
    for (ValueId v : inputs)
      shapes.push_back(&shape(v));
    DType dtype = attrs.integer ? DType::I64 : DType::F32;
    Node n{op,    std::move(inputs), inferShape(op, shapes, attrs).shape, dtype,
           std::move(attrs), loc, {}};
    return emit(std::move(n));
  }
  ValueId constant(double v, ast::Loc loc) {
    Attrs a;
    a.value = v;
    return make(Op::Const, {}, a, loc);
  }

  ValueId emit(Node n) {
    ValueId r = rewrite(n);
    if (r != kNoValue)
      return r;
    if (n.op == Op::Assign)
      return out_.add(n.op, n.inputs, n.attrs, n.loc);
    std::string key = keyOf(n);
    auto it = cse_.find(key);
    if (it != cse_.end())
      return it->second;
    ValueId v = out_.add(n.op, n.inputs, n.attrs, n.loc);
    cse_.emplace(std::move(key), v);
    return v;
  }

  static std::string keyOf(const Node &n) {
    std::string key = fmt::format("{}|{}|", static_cast<int>(n.op), attrKey(n));
    for (ValueId v : n.inputs)
      key += fmt::format("{},", v);
    return key;
  }

  // ---- rules -------------------------------------------------------------

  /// A simpler equivalent of `n`, or kNoValue to keep it as is.
  ValueId rewrite(const Node &n) {
    if (n.op == Op::StopGradient) // a value like any other once differentiated
      return n.inputs[0];
    if (opKind(n.op) == OpKind::Elementwise)
      return elementwise(n);
    const auto &in = n.inputs;
    switch (n.op) {
    case Op::BroadcastTo:
    case Op::SumTo:
    case Op::Reshape:
      if (shape(in[0]) == n.shape)
        return in[0];
      if (n.op == Op::Reshape && at(in[0]).op == Op::Reshape)
        return make(Op::Reshape, {at(in[0]).inputs[0]}, n.attrs, n.loc);
      if (n.op == Op::SumTo && n.shape.rank() == 0)
        return make(Op::Sum, {in[0]}, {}, n.loc);
      if (n.op == Op::SumTo)
        return sumOfProduct(n);
      return kNoValue;
    case Op::Sum:
      // sum(broadcast_to(y, S)) = y * numel(S) for a scalar y.
      if (at(in[0]).op == Op::BroadcastTo && shape(at(in[0]).inputs[0]).rank() == 0) {
        const Shape s = shape(in[0]);
        ValueId count = constant(static_cast<double>(s.constNumel()), n.loc);
        if (s.hasBatch())
          count = make(Op::Mul, {count, make(Op::BatchSize, {}, {}, n.loc)}, {}, n.loc);
        return make(Op::Mul, {count, at(in[0]).inputs[0]}, {}, n.loc);
      }
      return kNoValue;
    default:
      return kNoValue;
    }
  }

  /// sum_to(-x) = -sum_to(x) (exact), and the factors of a product that
  /// are constant over the summed axes, of the sum's own shape (a batch
  /// norm's per-channel scale and inverse deviation), come out of it:
  /// sum_to(x·c) = sum_to(x)·c. Batch norm's backward pass then needs no
  /// sum over its scaled gradient, only over the incoming one (which
  /// another sum reads already) and one pass less.
  ValueId sumOfProduct(const Node &n) {
    ValueId x = n.inputs[0];
    if (at(x).op == Op::Neg)
      return make(Op::Neg, {make(Op::SumTo, {at(x).inputs[0]}, n.attrs, n.loc)}, {}, n.loc);
    if (at(x).op != Op::Mul)
      return kNoValue;
    // The factors of the product's top levels (a long chain of products
    // is not unfolded: its depth would be the recursion's).
    std::vector<ValueId> factors, inside, outside;
    std::function<void(ValueId, int)> flatten = [&](ValueId v, int depth) {
      if (at(v).op == Op::Mul && depth < 4) {
        flatten(at(v).inputs[0], depth + 1);
        flatten(at(v).inputs[1], depth + 1);
      } else {
        factors.push_back(v);
      }
    };
    flatten(x, 0);
    for (ValueId f : factors)
      (shape(f) == n.shape ? outside : inside).push_back(f);
    if (outside.empty() || inside.empty())
      return kNoValue;
    auto product = [&](const std::vector<ValueId> &of) {
      ValueId p = of.front();
      for (size_t i = 1; i < of.size(); ++i)
        p = make(Op::Mul, {p, of[i]}, {}, n.loc);
      return p;
    };
    return make(Op::Mul, {make(Op::SumTo, {product(inside)}, n.attrs, n.loc), product(outside)}, {},
                n.loc);
  }

  /// window_take_grad(i, g) · step(x) with i = max_pool2d_index(x) (a
  /// ReLU's mask on its max pooling's gradient) = window_take_grad(i, g ·
  /// step(max_pool2d(x))): the gradient is 0 off each window's maximum,
  /// and at it x is the pooled value. Exact, and the backward pass then
  /// reads neither x nor the image-sized mask, only pooled tensors.
  ValueId maskedPoolGradient(ValueId take, ValueId mask, ast::Loc loc) {
    if (at(take).op != Op::WindowTakeGrad || at(mask).op != Op::Step ||
        !(shape(take) == shape(mask)))
      return kNoValue;
    ValueId offsets = at(take).inputs[0], dy = at(take).inputs[1], x = at(mask).inputs[0];
    if (at(offsets).op != Op::MaxPool2dIndex || at(offsets).inputs[0] != x)
      return kNoValue;
    Attrs pooling = at(offsets).attrs, image = at(take).attrs; // copies: the graph grows
    ValueId pooled = make(Op::MaxPool2d, {x}, pooling, loc);
    ValueId masked = make(Op::Mul, {dy, make(Op::Step, {pooled}, {}, loc)}, {}, loc);
    return make(Op::WindowTakeGrad, {offsets, masked}, image, loc);
  }

  ValueId elementwise(const Node &n) {
    const auto &in = n.inputs;
    bool allConst = true;
    for (ValueId v : in)
      allConst = allConst && isConst(v);
    if (allConst)
      return constant(applyElementwise(n.op, n.attrs, constOf(in[0]),
                                       in.size() > 1 ? constOf(in[1]) : 0.0),
                      n.loc);
    if (in.size() == 2) {
      // An explicit broadcast that elementwise broadcasting makes redundant.
      for (size_t i = 0; i < 2; ++i) {
        const Node &b = at(in[i]);
        if (b.op != Op::BroadcastTo)
          continue;
        auto s = broadcastShapes(shape(b.inputs[0]), shape(in[1 - i]));
        if (s && *s == n.shape) {
          std::vector<ValueId> ops = in;
          ops[i] = b.inputs[0];
          return make(n.op, ops, n.attrs, n.loc);
        }
      }
    }
    auto same = [&](ValueId v) { return shape(v) == n.shape; };
    auto neg = [&](ValueId v) { return at(v).op == Op::Neg; };
    auto operandOf = [&](ValueId v) { return at(v).inputs[0]; };
    switch (n.op) {
    case Op::Add:
      if (isConst(in[1], 0) && same(in[0]))
        return in[0];
      if (isConst(in[0], 0) && same(in[1]))
        return in[1];
      if (neg(in[1]))
        return make(Op::Sub, {in[0], operandOf(in[1])}, {}, n.loc);
      if (neg(in[0]))
        return make(Op::Sub, {in[1], operandOf(in[0])}, {}, n.loc);
      return kNoValue;
    case Op::Sub:
      if (isConst(in[1], 0) && same(in[0]))
        return in[0];
      if (isConst(in[0], 0) && same(in[1]))
        return make(Op::Neg, {in[1]}, {}, n.loc);
      if (neg(in[1]))
        return make(Op::Add, {in[0], operandOf(in[1])}, {}, n.loc);
      return kNoValue;
    case Op::Mul:
      if (ValueId r = maskedPoolGradient(in[0], in[1], n.loc); r != kNoValue)
        return r;
      if (ValueId r = maskedPoolGradient(in[1], in[0], n.loc); r != kNoValue)
        return r;
      if (isConst(in[1]) && !isConst(in[0])) // constants go left
        return make(Op::Mul, {in[1], in[0]}, {}, n.loc);
      if (isConst(in[0], 1) && same(in[1]))
        return in[1];
      if (isConst(in[0], -1) && same(in[1]))
        return make(Op::Neg, {in[1]}, {}, n.loc);
      if (isConst(in[0]) && at(in[1]).op == Op::Mul && isConst(at(in[1]).inputs[0])) {
        ValueId c = constant(constOf(in[0]) * constOf(at(in[1]).inputs[0]), n.loc);
        return make(Op::Mul, {c, at(in[1]).inputs[1]}, {}, n.loc);
      }
      if (neg(in[0]))
        return make(Op::Neg, {make(Op::Mul, {operandOf(in[0]), in[1]}, {}, n.loc)}, {}, n.loc);
      if (neg(in[1]))
        return make(Op::Neg, {make(Op::Mul, {in[0], operandOf(in[1])}, {}, n.loc)}, {}, n.loc);
      return kNoValue;
    case Op::Div:
      if (isConst(in[1], 1) && same(in[0]))
        return in[0];
      return kNoValue;
    case Op::Neg:
      if (neg(in[0]))
        return operandOf(in[0]);
      if (at(in[0]).op == Op::Sub)
        return make(Op::Sub, {at(in[0]).inputs[1], at(in[0]).inputs[0]}, {}, n.loc);
      return kNoValue;
    case Op::PowI:
      if (n.attrs.k == 1)
        return in[0];
      if (n.attrs.k == 0) {
        ValueId one = constant(1.0, n.loc);
        Attrs a;
        a.shape = n.shape;
        return n.shape.rank() == 0 ? one : make(Op::BroadcastTo, {one}, a, n.loc);
      }
      return kNoValue;
    default:
      return kNoValue;
    }
  }

  const Graph &in_;
  Graph out_;
  std::unordered_map<std::string, ValueId> cse_;
};

} // namespace

Graph removeDeadNodes(const Graph &g, std::vector<ValueId> *renumbered) {
  std::vector<bool> live(g.size(), false);
  for (const auto &o : g.outputs)
    live[static_cast<size_t>(o.value)] = true;
  for (ValueId e : g.effects)
    live[static_cast<size_t>(e)] = true;
  for (size_t i = g.size(); i-- > 0;)
    if (live[i])
      for (ValueId v : g.node(static_cast<ValueId>(i)).inputs)
        live[static_cast<size_t>(v)] = true;
  Graph out;
  std::vector<ValueId> map(g.size(), kNoValue);
  for (size_t i = 0; i < g.size(); ++i) {
    if (!live[i])
      continue;
    const Node &n = g.node(static_cast<ValueId>(i));
    std::vector<ValueId> inputs;
    for (ValueId v : n.inputs)
      inputs.push_back(map[static_cast<size_t>(v)]);
    map[i] = out.copy(n, std::move(inputs));
  }
  for (const auto &o : g.outputs)
    out.outputs.push_back({o.name, map[static_cast<size_t>(o.value)]});
  for (ValueId e : g.effects)
    out.effects.push_back(map[static_cast<size_t>(e)]);
  if (renumbered)
    *renumbered = std::move(map);
  return out;
}

Graph simplify(const Graph &graph) { return Simplifier(graph).run(); }

} // namespace netc
