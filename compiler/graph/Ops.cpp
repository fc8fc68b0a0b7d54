// Ops.cpp - op metadata, shape rules and gradient rules, op by op.
//
// Each op's gradient rule is written with small value helpers (V) so it reads
// like the math: d(sin x) = dy * cos(x).
#include "compiler/graph/Ops.h"

#include <fmt/format.h>

#include <cassert>

namespace netc {

namespace {

struct OpRow {
  const char *name;
  int arity;
  OpKind kind;
};

constexpr OpRow kRows[] = {
#define OP(Name, Mnemonic, Arity, Kind) {Mnemonic, Arity, OpKind::Kind},
#include "compiler/graph/Ops.def"
};

const OpRow &row(Op op) { return kRows[static_cast<size_t>(op)]; }

} // namespace

const char *opName(Op op) { return row(op).name; }
int opArity(Op op) { return row(op).arity; }
OpKind opKind(Op op) { return row(op).kind; }

// ---- shapes ----------------------------------------------------------------

bool Shape::hasBatch() const {
  for (auto d : dims)
    if (d == kBatch)
      return true;
  return false;
}

int64_t Shape::constNumel() const {
  int64_t n = 1;
  for (auto d : dims)
    if (d != kBatch)
      n *= d;
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i)
      s += ", ";
    s += dims[i] == kBatch ? std::string("N") : std::to_string(dims[i]);
  }
  return s + "]";
}

const char *dtypeName(DType t) { return t == DType::F32 ? "f32" : "i64"; }

std::optional<Shape> broadcastShapes(const Shape &a, const Shape &b) {
  size_t rank = std::max(a.rank(), b.rank());
  Shape out;
  out.dims.resize(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.rank() ? 1 : a.dims[i - (rank - a.rank())];
    int64_t db = i < rank - b.rank() ? 1 : b.dims[i - (rank - b.rank())];
    if (da == db || db == 1)
      out.dims[i] = da;
    else if (da == 1)
      out.dims[i] = db;
    else
      return std::nullopt;
  }
  return out;
}

namespace {

ShapeResult ok(Shape s) { return {std::move(s), {}}; }
ShapeResult fail(std::string message) { return {{}, std::move(message)}; }

// A shape may hold N at most once: numel must stay affine in N.
ShapeResult checked(Shape s) {
  int batch = 0;
  for (auto d : s.dims)
    batch += d == kBatch;
  if (batch > 1)
    return fail(fmt::format("the result {} would have the batch dimension "
                            "twice; that is not supported",
                            s.str()));
  return ok(std::move(s));
}

ShapeResult matmulShape(const Shape &a, const Shape &b, const Attrs &at) {
  if (a.rank() != 2 || b.rank() != 2)
    return fail(fmt::format("matrix product needs 2-d operands, got {} and {}",
                            a.str(), b.str()));
  int64_t m = at.transA ? a.dims[1] : a.dims[0];
  int64_t ka = at.transA ? a.dims[0] : a.dims[1];
  int64_t kb = at.transB ? b.dims[1] : b.dims[0];
  int64_t n = at.transB ? b.dims[0] : b.dims[1];
  if (ka != kb)
    return fail(fmt::format("matrix product of {} and {}: inner dimensions "
                            "differ",
                            a.str(), b.str()));
  return checked(Shape{{m, n}});
}

} // namespace

ShapeResult inferShape(Op op, const std::vector<const Shape *> &in,
                       const Attrs &attrs) {
  int arity = opArity(op);
  if (arity >= 0 && in.size() != static_cast<size_t>(arity))
    return fail(fmt::format("{} takes {} operand(s), got {}", opName(op), arity,
                            in.size()));
  switch (opKind(op)) {
  case OpKind::Leaf:
    return checked(attrs.shape);
  case OpKind::Elementwise: {
    if (in.size() == 1)
      return ok(*in[0]);
    auto s = broadcastShapes(*in[0], *in[1]);
    if (!s)
      return fail(fmt::format("shapes {} and {} do not broadcast",
                              in[0]->str(), in[1]->str()));
    return checked(*s);
  }
  case OpKind::MatMul:
    return matmulShape(*in[0], *in[1], attrs);
  case OpKind::Effect:
    if (!(*in[0] == *in[1]))
      return fail(fmt::format("cannot assign {} to {}", in[1]->str(),
                              in[0]->str()));
    return ok(Shape{});
  default:
    break;
  }
  switch (op) {
  case Op::Sum:
    return ok(Shape{});
  case Op::SumTo: {
    auto s = broadcastShapes(attrs.shape, *in[0]);
    if (!s || !(*s == *in[0]))
      return fail(fmt::format("cannot sum {} down to {}", in[0]->str(),
                              attrs.shape.str()));
    return ok(attrs.shape);
  }
  case Op::BroadcastTo: {
    auto s = broadcastShapes(*in[0], attrs.shape);
    if (!s || !(*s == attrs.shape))
      return fail(fmt::format("cannot broadcast {} to {}", in[0]->str(),
                              attrs.shape.str()));
    return ok(attrs.shape);
  }
  case Op::Reshape:
    if (in[0]->constNumel() != attrs.shape.constNumel() ||
        in[0]->hasBatch() != attrs.shape.hasBatch())
      return fail(fmt::format("cannot reshape {} to {}", in[0]->str(),
                              attrs.shape.str()));
    return checked(attrs.shape);
  case Op::Stack: {
    if (in.empty())
      return fail("stack needs at least one operand");
    for (const Shape *s : in)
      if (!(*s == *in[0]))
        return fail(fmt::format("stack needs operands of one shape, got {} "
                                "and {}",
                                in[0]->str(), s->str()));
    Shape s = *in[0];
    s.dims.push_back(static_cast<int64_t>(in.size()));
    return checked(s);
  }
  case Op::Slice: {
    if (in[0]->rank() == 0 || in[0]->dims.back() == kBatch ||
        attrs.k < 0 || attrs.k >= in[0]->dims.back())
      return fail(fmt::format("cannot take index {} of the last axis of {}",
                              attrs.k, in[0]->str()));
    Shape s = *in[0];
    s.dims.pop_back();
    return ok(s);
  }
  default:
    break;
  }
  assert(false && "op without a shape rule");
  return fail("internal error: op without a shape rule");
}

// ---- the graph -------------------------------------------------------------

ValueId Graph::add(Op op, std::vector<ValueId> inputs, Attrs attrs,
                   ast::Loc loc) {
  std::vector<const Shape *> shapes;
  for (ValueId v : inputs) {
    assert(v >= 0 && static_cast<size_t>(v) < nodes_.size() &&
           "operand must precede its use");
    shapes.push_back(&nodes_[static_cast<size_t>(v)].shape);
  }
  ShapeResult r = inferShape(op, shapes, attrs);
  assert(r.error.empty() && "shape rule failed inside the compiler");
  Node n{op, std::move(inputs), std::move(r.shape), DType::F32, std::move(attrs),
         loc};
  nodes_.push_back(std::move(n));
  return static_cast<ValueId>(nodes_.size() - 1);
}

ValueId Graph::constant(double value, ast::Loc loc) {
  Attrs a;
  a.value = value;
  return add(Op::Const, {}, a, loc);
}

ValueId Graph::unary(Op op, ValueId x, ast::Loc loc) {
  return add(op, {x}, {}, loc);
}

ValueId Graph::binary(Op op, ValueId a, ValueId b, ast::Loc loc) {
  return add(op, {a, b}, {}, loc);
}

ValueId Graph::output(std::string_view name) const {
  for (const auto &o : outputs)
    if (o.name == name)
      return o.value;
  return kNoValue;
}

// ---- gradient rules --------------------------------------------------------

namespace {

/// A value in the graph being extended, with arithmetic that adds nodes.
struct V {
  Graph *g;
  ValueId id;
};
V operator+(V a, V b) { return {a.g, a.g->binary(Op::Add, a.id, b.id)}; }
V operator-(V a, V b) { return {a.g, a.g->binary(Op::Sub, a.id, b.id)}; }
V operator*(V a, V b) { return {a.g, a.g->binary(Op::Mul, a.id, b.id)}; }
V operator/(V a, V b) { return {a.g, a.g->binary(Op::Div, a.id, b.id)}; }
V operator-(V a) { return {a.g, a.g->unary(Op::Neg, a.id)}; }
V operator*(double c, V b) { return V{b.g, b.g->constant(c)} * b; }
V operator-(double c, V b) { return V{b.g, b.g->constant(c)} - b; }
V apply(Op op, V x) { return {x.g, x.g->unary(op, x.id)}; }
V powi(V x, int64_t k) {
  Attrs a;
  a.k = k;
  return {x.g, x.g->add(Op::PowI, {x.id}, a)};
}
V withShape(Op op, V x, const Shape &s) {
  Attrs a;
  a.shape = s;
  return {x.g, x.g->add(op, {x.id}, a)};
}
V matmul(V a, V b, bool ta, bool tb) {
  Attrs at;
  at.transA = ta;
  at.transB = tb;
  return {a.g, a.g->add(Op::MatMul, {a.id, b.id}, at)};
}

using Grads = std::vector<ValueId>;
Grads grads(std::initializer_list<V> vs) {
  Grads out;
  for (V v : vs)
    out.push_back(v.id);
  return out;
}

// d(C = op(A) op(B)) for the four transpose combinations.
Grads matmulGrad(V a, V b, V dc, bool ta, bool tb) {
  if (!ta && !tb)
    return grads({matmul(dc, b, false, true), matmul(a, dc, true, false)});
  if (!ta && tb)
    return grads({matmul(dc, b, false, false), matmul(dc, a, true, false)});
  if (ta && !tb)
    return grads({matmul(b, dc, false, true), matmul(a, dc, false, false)});
  return grads({matmul(b, dc, true, true), matmul(dc, a, true, true)});
}

} // namespace

bool isDifferentiable(Op op) {
  OpKind k = opKind(op);
  return k != OpKind::Leaf && k != OpKind::Effect;
}

std::vector<ValueId> gradientOf(GradArgs args) {
  Graph &g = args.g;
  const Node &n = args.node;
  V dy{&g, args.dy};
  V y{&g, args.self};
  auto x = [&](size_t i) { return V{&g, n.inputs[i]}; };
  switch (n.op) {
  case Op::Neg:
    return grads({-dy});
  case Op::Exp:
    return grads({dy * y});
  case Op::Log:
    return grads({dy / x(0)});
  case Op::Sin:
    return grads({dy * apply(Op::Cos, x(0))});
  case Op::Cos:
    return grads({-(dy * apply(Op::Sin, x(0)))});
  case Op::Sigmoid:
    return grads({dy * (y * (1.0 - y))});
  case Op::Tanh:
    return grads({dy * (1.0 - y * y)});
  case Op::Relu:
    return grads({dy * apply(Op::Step, x(0))});
  case Op::Sqrt:
    return grads({dy / (2.0 * y)});
  case Op::Abs:
    return grads({dy * apply(Op::Sign, x(0))});
  case Op::Sign:
  case Op::Step:
    return {kNoValue}; // piecewise constant
  case Op::PowI:
    if (n.attrs.k == 0)
      return {kNoValue};
    if (n.attrs.k == 1)
      return grads({dy});
    return grads({dy * (static_cast<double>(n.attrs.k) * powi(x(0), n.attrs.k - 1))});
  case Op::Add:
    return grads({dy, dy});
  case Op::Sub:
    return grads({dy, -dy});
  case Op::Mul:
    return grads({dy * x(1), dy * x(0)});
  case Op::Div:
    return grads({dy / x(1), -(dy * y / x(1))});
  case Op::Sum:
  case Op::SumTo:
    return grads({withShape(Op::BroadcastTo, dy, g.shape(n.inputs[0]))});
  case Op::BroadcastTo:
    return grads({withShape(Op::SumTo, dy, g.shape(n.inputs[0]))});
  case Op::Reshape:
    return grads({withShape(Op::Reshape, dy, g.shape(n.inputs[0]))});
  case Op::Stack: {
    Grads out;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      Attrs a;
      a.k = static_cast<int64_t>(i);
      out.push_back(g.add(Op::Slice, {args.dy}, a));
    }
    return out;
  }
  case Op::Slice: {
    // The adjoint of taking one column: that column gets dy, the others 0.
    const Shape in = g.shape(n.inputs[0]);
    V zero = withShape(Op::BroadcastTo, V{&g, g.constant(0.0)}, g.shape(args.self));
    std::vector<ValueId> columns;
    for (int64_t j = 0; j < in.dims.back(); ++j)
      columns.push_back(j == n.attrs.k ? args.dy : zero.id);
    return {g.add(Op::Stack, columns)};
  }
  case Op::MatMul:
    return matmulGrad(x(0), x(1), dy, n.attrs.transA, n.attrs.transB);
  default:
    break;
  }
  assert(false && "gradientOf called on an op without a gradient");
  return {};
}

} // namespace netc
