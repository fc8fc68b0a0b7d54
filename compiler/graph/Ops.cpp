// Ops.cpp - op metadata, shape rules and gradient rules, op by op.
//
// Each op's gradient rule is written with small value helpers (V) so it reads
// like the math: d(sin x) = dy * cos(x).
#include "compiler/graph/Ops.h"

#include "compiler/graph/AudioTables.h"

#include <fmt/format.h>

#include <cassert>
#include <cmath>
#include <cstring>

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

/// A matrix product's operand as a matrix: its leading dims (rows) and its
/// last dim (columns).
std::pair<std::vector<int64_t>, int64_t> asMatrix(const Shape &s) {
  return {std::vector<int64_t>(s.dims.begin(), s.dims.end() - 1), s.dims.back()};
}

ShapeResult matmulShape(const Shape &a, const Shape &b, const Attrs &at) {
  if (a.rank() < 2 || b.rank() < 2 || (at.transB && b.rank() != 2))
    return fail(fmt::format("matrix product needs 2-d operands, got {} and {}",
                            a.str(), b.str()));
  auto [aRows, aCols] = asMatrix(a);
  auto [bRows, bCols] = asMatrix(b);
  // op(A) is rows x inner, op(B) inner x cols; an operand of higher rank
  // keeps its leading dims together, so its rows may only meet the other
  // operand's rows (Aᵀ·B, a gradient summed over them) or become C's.
  std::vector<int64_t> rows = at.transA ? std::vector<int64_t>{aCols} : aRows;
  std::vector<int64_t> ka = at.transA ? aRows : std::vector<int64_t>{aCols};
  std::vector<int64_t> kb = at.transB ? std::vector<int64_t>{bCols} : bRows;
  int64_t n = at.transB ? bRows[0] : bCols;
  if (ka != kb)
    return fail(fmt::format("matrix product of {} and {}: inner dimensions "
                            "differ",
                            a.str(), b.str()));
  rows.push_back(n);
  return checked(Shape{rows});
}

/// frames: [.., L] -> [.., T, n] (Ops.def).
ShapeResult framesShape(const std::vector<const Shape *> &in, const Attrs &at) {
  const Shape &x = *in[0];
  const std::vector<int64_t> &w = at.window;
  if (x.rank() == 0 || x.dims.back() == kBatch || w.size() != 4 || w[0] < 1 || w[1] < 1 ||
      w[2] < 0 || w[3] < 0)
    return fail(fmt::format("frames of {} need signals along the last axis", x.str()));
  int64_t length = x.dims.back();
  if (w[2] >= length || w[3] >= length)
    return fail(fmt::format("reflect padding of {} and {} samples needs signals longer than "
                            "that, got {}",
                            w[2], w[3], length));
  int64_t padded = length + w[2] + w[3];
  if (padded < w[0])
    return fail(fmt::format("frames of {} samples from signals of {} (padded) leave none", w[0],
                            padded));
  Shape out = x;
  out.dims.back() = (padded - w[0]) / w[1] + 1;
  out.dims.push_back(w[0]);
  return checked(out);
}

} // namespace

int64_t reflectIndex(int64_t p, int64_t padLeft, int64_t length) {
  int64_t i = p - padLeft;
  if (i < 0)
    return -i;
  if (i >= length)
    return 2 * (length - 1) - i;
  return i;
}

namespace {
} // namespace

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
  DType dtype = attrs.integer ? DType::I64 : DType::F32;
  if (hasOrigin_ && loc.begin == 0 && loc.end == 0)
    loc = originLoc_;
  Node n{op,  std::move(inputs), std::move(r.shape), dtype, std::move(attrs), loc, {}, phase_,
         hasOrigin_ ? origin_ : op};
  nodes_.push_back(std::move(n));
  return static_cast<ValueId>(nodes_.size() - 1);
}

const char *phaseName(Phase phase) {
  switch (phase) {
  case Phase::Forward:
    return "forward";
  case Phase::Backward:
    return "backward";
  case Phase::Update:
    return "update";
  }
  return "forward";
}

ValueId Graph::constant(double value, ast::Loc loc) {
  Attrs a;
  a.value = value;
  return add(Op::Const, {}, a, loc);
}

ValueId Graph::table(std::string name, Shape shape, std::vector<double> values, ast::Loc loc) {
  Attrs a;
  a.name = std::move(name);
  a.shape = std::move(shape);
  a.table = std::make_shared<const std::vector<double>>(std::move(values));
  return add(Op::Table, {}, a, loc);
}

ValueId Graph::unary(Op op, ValueId x, ast::Loc loc) {
  return add(op, {x}, {}, loc);
}

ValueId Graph::binary(Op op, ValueId a, ValueId b, ast::Loc loc) {
  return add(op, {a, b}, {}, loc);
}

ValueId Graph::copy(const Node &n, std::vector<ValueId> inputs) {
  setPhase(n.phase);
  setOrigin(n.origin, n.loc);
  ValueId id = add(n.op, std::move(inputs), n.attrs, n.loc);
  if (!n.label.empty())
    setLabel(id, n.label);
  return id;
}

Graph rebuild(const Graph &g, const Replacement &replace) {
  Graph out;
  std::vector<ValueId> map(g.size(), kNoValue);
  for (size_t i = 0; i < g.size(); ++i) {
    const Node &n = g.node(static_cast<ValueId>(i));
    std::vector<ValueId> operands;
    for (ValueId v : n.inputs)
      operands.push_back(map[static_cast<size_t>(v)]);
    out.setPhase(n.phase);
    out.setOrigin(n.origin, n.loc);
    ValueId r = replace(out, static_cast<ValueId>(i), operands);
    if (r == kNoValue) {
      map[i] = out.copy(n, std::move(operands));
      continue;
    }
    map[i] = r;
    if (!n.label.empty())
      out.setLabel(r, n.label);
  }
  out.clearOrigin();
  for (const auto &o : g.outputs)
    out.outputs.push_back({o.name, map[static_cast<size_t>(o.value)]});
  for (ValueId e : g.effects)
    out.effects.push_back(map[static_cast<size_t>(e)]);
  return out;
}

ValueId Graph::output(std::string_view name) const {
  // The index may be stale (outputs changed since): a hit is checked, a
  // miss rebuilds it once.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (attempt == 1) {
      outputIndex_.clear();
      for (size_t i = 0; i < outputs.size(); ++i)
        outputIndex_.emplace(outputs[i].name, i);
    }
    auto it = outputIndex_.find(std::string(name));
    if (it != outputIndex_.end() && it->second < outputs.size() && outputs[it->second].name == name)
      return outputs[it->second].value;
  }
  return kNoValue;
}

// ---- value helpers for gradient rules ------------------------------------

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
/// x^c for a real constant c.
V realPow(V x, double c) {
  Attrs a;
  a.value = c;
  return {x.g, x.g->add(Op::Pow, {x.id}, a)};
}

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

// ---- the rules, op by op ---------------------------------------------------
//
// One row per op, in Ops.def order: its shape rule, its gradient rule, its
// value on doubles (elementwise ops), whether it may join a matrix
// product's epilogue, and the attributes that identify it. A gradient rule
// gets the op's node, result and adjoint (GradArgs) and returns one
// contribution per operand (kNoValue: none).

namespace {

using ShapeRule = ShapeResult (*)(const std::vector<const Shape *> &, const Attrs &);

/// What a gradient rule reads, with the values wrapped for arithmetic.
struct Rule {
  GradArgs &a;
  V dy() const { return {&a.g, a.dy}; }
  V y() const { return {&a.g, a.self}; }
  V x(size_t i) const { return {&a.g, a.node.inputs[i]}; }
  const Shape &shapeOf(size_t i) const { return a.g.shape(a.node.inputs[i]); }
};
using GradRule = Grads (*)(Rule);

/// An elementwise op's value on doubles (the reference interpreter's, and
/// constant folding's): a, b (binary ops), the node's attributes.
using EvalRule = double (*)(double, double, const Attrs &);

/// The attributes that are part of an op's identity: printed by
/// --emit=graph, compared by CSE.
enum AttrUse : unsigned {
  kNone = 0,
  kName = 1,   ///< attrs.name (leaves)
  kK = 2,      ///< attrs.k: exponent, slot, index, class count
  kShape = 4,  ///< attrs.shape: target shape, leaf shape
  kValue = 8,  ///< attrs.value: a constant or a real exponent
  kTrans = 16, ///< attrs.transA, attrs.transB
  kWindow = 32, ///< attrs.window
  kMomentum = 64, ///< attrs.momentum
};

/// Every fact of an op but its kind and arity (Ops.def) and its LLVM
/// lowering (codegen): one row per op, in Ops.def order.
struct OpRules {
  Op op;
  ShapeRule shape;
  GradRule grad;           ///< null for leaves and effects
  EvalRule eval = nullptr; ///< elementwise ops
  bool epilogue = false;   ///< cheap on a register tile: may follow a matrix product
  unsigned attrs = kNone;  ///< AttrUse bits
};

double evalPowI(double a, double, const Attrs &attrs) {
  double r = 1;
  int64_t k = attrs.k < 0 ? -attrs.k : attrs.k;
  for (int64_t i = 0; i < k; ++i)
    r *= a;
  return attrs.k < 0 ? 1.0 / r : r;
}

ShapeResult leafShape(const std::vector<const Shape *> &, const Attrs &at) {
  return checked(at.shape);
}
ShapeResult sameShape(const std::vector<const Shape *> &in, const Attrs &) { return ok(*in[0]); }
ShapeResult broadcastShape(const std::vector<const Shape *> &in, const Attrs &) {
  auto s = broadcastShapes(*in[0], *in[1]);
  if (!s)
    return fail(fmt::format("shapes {} and {} do not broadcast", in[0]->str(), in[1]->str()));
  return checked(*s);
}
ShapeResult scalarShape(const std::vector<const Shape *> &, const Attrs &) { return ok(Shape{}); }
// Row ops work on the last axis, which must be a fixed size.
// A window op's input is [N, C, H, W] with H and W fixed sizes.
std::optional<std::string> imageError(const Shape &x, const char *what) {
  if (x.rank() != 4 || x.dims[2] == kBatch || x.dims[3] == kBatch || x.dims[1] == kBatch)
    return fmt::format("{} takes images [N, C, H, W], got {}", what, x.str());
  return std::nullopt;
}

ShapeResult windowShape(const Shape &x, const WindowGeometry &w, int64_t channels,
                        const char *what) {
  if (auto e = imageError(x, what))
    return fail(*e);
  int64_t oh = w.outH(x.dims[2]), ow = w.outW(x.dims[3]);
  if (oh < 1 || ow < 1)
    return fail(fmt::format("{} with a {}x{} window over images of {}x{} (padded) leaves no "
                            "output",
                            what, w.kh, w.kw, x.dims[2] + w.pt + w.pb, x.dims[3] + w.pl + w.pr));
  return checked(Shape{{x.dims[0], channels, oh, ow}});
}

ShapeResult convShape(const std::vector<const Shape *> &in, const Attrs &at) {
  const Shape &x = *in[0], &w = *in[1];
  if (w.rank() != 4 || w.hasBatch())
    return fail(fmt::format("conv2d weights are [out, in, kh, kw], got {}", w.str()));
  if (auto e = imageError(x, "conv2d"))
    return fail(*e);
  if (x.dims[1] != w.dims[1])
    return fail(fmt::format("conv2d over {} channels, but the images {} have {}", w.dims[1],
                            x.str(), x.dims[1]));
  return windowShape(x, windowGeometry(Op::Conv2d, at, &w), w.dims[0], "conv2d");
}

ShapeResult poolShape(const std::vector<const Shape *> &in, const Attrs &at) {
  return windowShape(*in[0], windowGeometry(Op::MaxPool2d, at, nullptr), in[0]->dims.size() == 4 ? in[0]->dims[1] : 0, "pooling");
}

/// Gradients of window ops compute the shape their attrs give.
ShapeResult givenShape(const std::vector<const Shape *> &, const Attrs &at) {
  return checked(at.shape);
}

ShapeResult rowShape(const std::vector<const Shape *> &in, const Attrs &) {
  if (in[0]->rank() == 0 || in[0]->dims.back() == kBatch)
    return fail(fmt::format("softmax works along the last axis, which {} does not have "
                            "(or it is the batch)",
                            in[0]->str()));
  return ok(*in[0]);
}
/// The shape of a sum over the last axis, kept as size 1 for broadcasting.
Shape rowSumShape(Shape s) {
  s.dims.back() = 1;
  return s;
}
Grads noGradient(Rule r) { return Grads(r.a.node.inputs.size(), kNoValue); }

const OpRules kRules[] = {
    {Op::Input, leafShape, nullptr, nullptr, false, kName | kK | kShape},
    {Op::Param, leafShape, nullptr, nullptr, false, kName | kK | kShape},
    {Op::State, leafShape, nullptr, nullptr, false, kName | kK | kShape},
    {Op::Buffer, leafShape, nullptr, nullptr, false, kName | kK | kShape},
    {Op::HParam, scalarShape, nullptr, nullptr, false, kName | kK},
    {Op::Const, scalarShape, nullptr, nullptr, false, kValue},
    {Op::BatchSize, scalarShape, nullptr, nullptr, false, kNone},
    {Op::Table, leafShape, nullptr, nullptr, false, kName | kShape},

    {Op::Neg, sameShape, [](Rule r) { return grads({-r.dy()}); }, [](double a, double, const Attrs &) { return -a; }, true, kNone},
    {Op::Exp, sameShape, [](Rule r) { return grads({r.dy() * r.y()}); }, [](double a, double, const Attrs &) { return std::exp(a); }, false, kNone},
    {Op::Log, sameShape, [](Rule r) { return grads({r.dy() / r.x(0)}); }, [](double a, double, const Attrs &) { return std::log(a); }, false, kNone},
    {Op::Sin, sameShape, [](Rule r) { return grads({r.dy() * apply(Op::Cos, r.x(0))}); }, [](double a, double, const Attrs &) { return std::sin(a); }, false, kNone},
    {Op::Cos, sameShape, [](Rule r) { return grads({-(r.dy() * apply(Op::Sin, r.x(0)))}); }, [](double a, double, const Attrs &) { return std::cos(a); }, false, kNone},
    {Op::Sigmoid, sameShape, [](Rule r) { return grads({r.dy() * (r.y() * (1.0 - r.y()))}); }, [](double a, double, const Attrs &) { return 1.0 / (1.0 + std::exp(-a)); }, false, kNone},
    {Op::Tanh, sameShape, [](Rule r) { return grads({r.dy() * (1.0 - r.y() * r.y())}); }, [](double a, double, const Attrs &) { return std::tanh(a); }, false, kNone},
    // The mask from the result (y > 0 exactly when x > 0, NaN neither): y is
    // kept for the next layer anyway, so x need not be.
    {Op::Relu, sameShape, [](Rule r) { return grads({r.dy() * apply(Op::Step, r.y())}); }, [](double a, double, const Attrs &) { return a > 0 || std::isnan(a) ? a : 0.0; }, true, kNone},
    {Op::Sqrt, sameShape, [](Rule r) { return grads({r.dy() / (2.0 * r.y())}); }, [](double a, double, const Attrs &) { return std::sqrt(a); }, true, kNone},
    {Op::Abs, sameShape, [](Rule r) { return grads({r.dy() * apply(Op::Sign, r.x(0))}); }, [](double a, double, const Attrs &) { return std::fabs(a); }, true, kNone},
    {Op::Sign, sameShape, noGradient, [](double a, double, const Attrs &) { return a > 0 ? 1.0 : a < 0 ? -1.0 : 0.0; }, true, kNone}, // piecewise constant
    {Op::Step, sameShape, noGradient, [](double a, double, const Attrs &) { return a > 0 ? 1.0 : 0.0; }, true, kNone}, // piecewise constant
    {Op::PowI, sameShape,
     [](Rule r) -> Grads {
       int64_t k = r.a.node.attrs.k;
       if (k == 0)
         return {kNoValue};
       if (k == 1)
         return grads({r.dy()});
       return grads({r.dy() * (static_cast<double>(k) * powi(r.x(0), k - 1))});
     },
     evalPowI, true, kK},

    // x^c = exp(c log x): defined for x > 0 (x = 0 with c > 0 is 0), as
    // torch.pow computes it for a real exponent.
    {Op::Pow, sameShape,
     [](Rule r) -> Grads {
       double c = r.a.node.attrs.value;
       return grads({r.dy() * (c * realPow(r.x(0), c - 1))});
     },
     [](double a, double, const Attrs &at) { return std::pow(a, at.value); }, false, kValue},
    {Op::StopGradient, sameShape, noGradient, [](double a, double, const Attrs &) { return a; }, true, kNone},
    {Op::FlushDenormal, sameShape, [](Rule r) { return grads({r.dy()}); }, [](double a, double, const Attrs &) { return std::fabs(a) < kSmallestNormal ? 0.0 : a; }, true, kNone},

    {Op::Add, broadcastShape, [](Rule r) { return grads({r.dy(), r.dy()}); }, [](double a, double b, const Attrs &) { return a + b; }, true, kNone},
    {Op::Sub, broadcastShape, [](Rule r) { return grads({r.dy(), -r.dy()}); }, [](double a, double b, const Attrs &) { return a - b; }, true, kNone},
    {Op::Mul, broadcastShape, [](Rule r) { return grads({r.dy() * r.x(1), r.dy() * r.x(0)}); }, [](double a, double b, const Attrs &) { return a * b; }, true, kNone},
    {Op::Div, broadcastShape,
     [](Rule r) { return grads({r.dy() / r.x(1), -(r.dy() * r.y() / r.x(1))}); },
     [](double a, double b, const Attrs &) { return a / b; }, true, kNone},
    // The larger operand gets the adjoint; a tie goes to the second.
    {Op::Max, broadcastShape,
     [](Rule r) {
       V first = apply(Op::Step, r.x(0) - r.x(1));
       V toFirst = r.dy() * first;
       return grads({toFirst, r.dy() - toFirst});
     },
     [](double a, double b, const Attrs &) { return std::isnan(a) || std::isnan(b) ? a + b : a > b ? a : b; }, true, kNone},

    // The same mask on the adjoint: its key and index are the same.
    {Op::DropoutTrain,
     [](const std::vector<const Shape *> &in, const Attrs &) {
       if (in[1]->rank() != 0 || in[2]->rank() != 0)
         return fail("dropout_train's key is two scalars");
       return ok(*in[0]);
     },
     [](Rule r) -> Grads {
       const auto &in = r.a.node.inputs;
       return {r.a.g.add(Op::DropoutTrain, {r.a.dy, in[1], in[2]}, r.a.node.attrs), kNoValue,
               kNoValue};
     },
     nullptr, false, kValue | kK},

    {Op::Sum, scalarShape,
     [](Rule r) { return grads({withShape(Op::BroadcastTo, r.dy(), r.shapeOf(0))}); },
     nullptr, false, kNone},
    {Op::SumTo,
     [](const std::vector<const Shape *> &in, const Attrs &at) {
       auto s = broadcastShapes(at.shape, *in[0]);
       if (!s || !(*s == *in[0]))
         return fail(fmt::format("cannot sum {} down to {}", in[0]->str(), at.shape.str()));
       return ok(at.shape);
     },
     [](Rule r) { return grads({withShape(Op::BroadcastTo, r.dy(), r.shapeOf(0))}); },
     nullptr, false, kShape},
    {Op::BroadcastTo,
     [](const std::vector<const Shape *> &in, const Attrs &at) {
       auto s = broadcastShapes(*in[0], at.shape);
       if (!s || !(*s == at.shape))
         return fail(fmt::format("cannot broadcast {} to {}", in[0]->str(), at.shape.str()));
       return ok(at.shape);
     },
     [](Rule r) { return grads({withShape(Op::SumTo, r.dy(), r.shapeOf(0))}); },
     nullptr, false, kShape},

    {Op::Reshape,
     [](const std::vector<const Shape *> &in, const Attrs &at) {
       if (in[0]->constNumel() != at.shape.constNumel() || in[0]->hasBatch() != at.shape.hasBatch())
         return fail(fmt::format("cannot reshape {} to {}", in[0]->str(), at.shape.str()));
       return checked(at.shape);
     },
     [](Rule r) { return grads({withShape(Op::Reshape, r.dy(), r.shapeOf(0))}); },
     nullptr, false, kShape},
    {Op::Stack,
     [](const std::vector<const Shape *> &in, const Attrs &) {
       if (in.empty())
         return fail("stack needs at least one operand");
       for (const Shape *s : in)
         if (!(*s == *in[0]))
           return fail(fmt::format("stack needs operands of one shape, got {} and {}",
                                   in[0]->str(), s->str()));
       Shape s = *in[0];
       s.dims.push_back(static_cast<int64_t>(in.size()));
       return checked(s);
     },
     [](Rule r) {
       // Each operand gets its column of the adjoint.
       Grads out;
       for (size_t i = 0; i < r.a.node.inputs.size(); ++i) {
         Attrs at;
         at.k = static_cast<int64_t>(i);
         out.push_back(r.a.g.add(Op::Slice, {r.a.dy}, at));
       }
       return out;
     },
     nullptr, false, kNone},
    {Op::Slice,
     [](const std::vector<const Shape *> &in, const Attrs &at) {
       if (in[0]->rank() == 0 || in[0]->dims.back() == kBatch || at.k < 0 ||
           at.k >= in[0]->dims.back())
         return fail(fmt::format("cannot take index {} of the last axis of {}", at.k,
                                 in[0]->str()));
       Shape s = *in[0];
       s.dims.pop_back();
       return ok(s);
     },
     [](Rule r) {
       // The adjoint of taking one column: that column gets dy, the others 0.
       int64_t columns = r.shapeOf(0).dims.back();
       Shape column = r.a.g.shape(r.a.self); // a copy: the graph grows below
       V zero = withShape(Op::BroadcastTo, V{&r.a.g, r.a.g.constant(0.0)}, column);
       std::vector<ValueId> parts;
       for (int64_t j = 0; j < columns; ++j)
         parts.push_back(j == r.a.node.attrs.k ? r.a.dy : zero.id);
       return Grads{r.a.g.add(Op::Stack, parts)};
     },
     nullptr, false, kK},

    {Op::Transpose,
     [](const std::vector<const Shape *> &in, const Attrs &) {
       if (in[0]->rank() < 2)
         return fail(fmt::format("transpose swaps the two last axes, which {} does not have",
                                 in[0]->str()));
       Shape s = *in[0];
       std::swap(s.dims[s.rank() - 1], s.dims[s.rank() - 2]);
       return ok(s);
     },
     [](Rule r) { return grads({apply(Op::Transpose, r.dy())}); }, nullptr, false, kNone},
    {Op::Frames, framesShape,
     [](Rule r) {
       Attrs a = r.a.node.attrs;
       a.shape = r.shapeOf(0);
       return Grads{r.a.g.add(Op::FramesGrad, {r.a.dy}, a)};
     },
     nullptr, false, kWindow},
    {Op::FramesGrad, givenShape,
     [](Rule r) {
       Attrs a = r.a.node.attrs;
       a.shape = {};
       return Grads{r.a.g.add(Op::Frames, {r.a.dy}, a)};
     },
     nullptr, false, kWindow | kShape},

    // dx = y * (dy - rowsum(dy * y)).
    {Op::Softmax, rowShape,
     [](Rule r) {
       V dyy = r.dy() * r.y();
       return grads({r.y() * (r.dy() - withShape(Op::SumTo, dyy, rowSumShape(r.shapeOf(0))))});
     },
     nullptr, false, kNone},
    // dx = dy - softmax(x) * rowsum(dy), softmax(x) = exp(y).
    {Op::LogSoftmax, rowShape,
     [](Rule r) {
       V rowsum = withShape(Op::SumTo, r.dy(), rowSumShape(r.shapeOf(0)));
       return grads({r.dy() - apply(Op::Exp, r.y()) * rowsum});
     },
     nullptr, false, kNone},

    {Op::Pick,
     [](const std::vector<const Shape *> &in, const Attrs &) {
       Shape rows = *in[0];
       if (rows.rank() == 0 || rows.dims.back() == kBatch)
         return fail(fmt::format("cannot pick classes from {}", in[0]->str()));
       rows.dims.pop_back();
       if (!(rows == *in[1]))
         return fail(fmt::format("labels of shape {} do not match scores of shape {}",
                                 in[1]->str(), in[0]->str()));
       return ok(rows);
     },
     [](Rule r) {
       Attrs at;
       at.k = r.shapeOf(0).dims.back();
       return Grads{r.a.g.add(Op::Scatter, {r.a.dy, r.a.node.inputs[1]}, at), kNoValue};
     },
     nullptr, false, kNone},
    {Op::Scatter,
     [](const std::vector<const Shape *> &in, const Attrs &at) {
       if (!(*in[0] == *in[1]) || at.k < 1)
         return fail(fmt::format("cannot scatter {} by labels {}", in[0]->str(), in[1]->str()));
       Shape s = *in[0];
       s.dims.push_back(at.k);
       return checked(s);
     },
     [](Rule r) {
       return Grads{r.a.g.add(Op::Pick, {r.a.dy, r.a.node.inputs[1]}), kNoValue};
     },
     nullptr, false, kK},

    {Op::Conv2d, convShape,
     [](Rule r) -> Grads {
       Attrs dx = r.a.node.attrs, dw = r.a.node.attrs;
       dx.shape = r.shapeOf(0);
       dw.shape = r.shapeOf(1);
       Graph &g = r.a.g;
       return {g.add(Op::Conv2dGradInput, {r.a.dy, r.a.node.inputs[1]}, dx),
               g.add(Op::Conv2dGradWeight, {r.a.node.inputs[0], r.a.dy}, dw)};
     },
     nullptr, false, kWindow},
    // The gradients' own gradients are never needed: sema never puts them
    // on the way from the loss to a parameter.
    {Op::Conv2dGradInput, givenShape, nullptr, nullptr, false, kWindow | kShape},
    {Op::Conv2dGradWeight, givenShape, nullptr, nullptr, false, kWindow | kShape},
    // dy goes to each window's first maximum: the windows' offsets (which
    // the forward pass's kernel finds with the maximum: Fuse.cpp), then dy
    // added there, so the backward pass does not read x again.
    {Op::MaxPool2d, poolShape,
     [](Rule r) -> Grads {
       Attrs image = r.a.node.attrs;
       image.shape = r.shapeOf(0);
       ValueId offsets = r.a.g.add(Op::MaxPool2dIndex, {r.a.node.inputs[0]}, r.a.node.attrs);
       return {r.a.g.add(Op::WindowTakeGrad, {offsets, r.a.dy}, image)};
     },
     nullptr, false, kWindow},
    {Op::AvgPool2d, poolShape,
     [](Rule r) -> Grads {
       Attrs a = r.a.node.attrs;
       a.shape = r.shapeOf(0);
       return {r.a.g.add(Op::AvgPool2dGrad, {r.a.dy}, a)};
     },
     nullptr, false, kWindow},
    {Op::AvgPool2dGrad, givenShape, nullptr, nullptr, false, kWindow | kShape},
    // Max pooling's gradient, and the twin's given choices (Decisions.h).
    {Op::MaxPool2dIndex, poolShape, nullptr, nullptr, false, kWindow},
    {Op::WindowTake,
     [](const std::vector<const Shape *> &in, const Attrs &at) {
       ShapeResult pooled = poolShape(in, at);
       if (pooled.error.empty() && !(pooled.shape == *in[1]))
         return fail(fmt::format("window offsets of shape {} for windows of shape {}",
                                 in[1]->str(), pooled.shape.str()));
       return pooled;
     },
     nullptr, nullptr, false, kWindow},
    {Op::WindowTakeGrad, givenShape, nullptr, nullptr, false, kWindow | kShape},

    {Op::PowerSpectrum,
     [](const std::vector<const Shape *> &in, const Attrs &at) {
       const Shape &x = *in[0];
       const std::vector<int64_t> &w = at.window;
       if (w.size() != 2 || w[0] < 2 || w[1] < 1 || w[1] > w[0] || x.rank() == 0 ||
           x.dims.back() != w[0])
         return fail(fmt::format("a power spectrum of frames of {} samples, got {}",
                                 w.empty() ? 0 : w[0], x.str()));
       Shape s = x;
       s.dims.back() = w[0] / 2 + 1;
       return ok(s);
     },
     [](Rule r) {
       // d|re + i im|² = 2 re dre + 2 im dim, re and im the frames times the
       // windowed DFT tables (AudioTables.h): dx = 2 (dy re) Cᵀ + 2 (dy im) Sᵀ.
       Graph &g = r.a.g;
       SpectrogramSpec spec;
       spec.nFft = r.a.node.attrs.window[0];
       spec.winLength = r.a.node.attrs.window[1];
       auto table = [&](bool imaginary) {
         return V{&g, g.table(dftTableName(spec, imaginary), Shape{{spec.nFft, spec.bins()}},
                              dftTable(spec, imaginary))};
       };
       V c = table(false), s = table(true), x = r.x(0), two{&g, g.constant(2.0)};
       V re = matmul(x, c, false, false), im = matmul(x, s, false, false);
       V dy = r.dy() * two;
       return grads({matmul(dy * re, c, false, true) + matmul(dy * im, s, false, true)});
     },
     nullptr, false, kWindow},

    {Op::MatMul,
     [](const std::vector<const Shape *> &in, const Attrs &at) {
       return matmulShape(*in[0], *in[1], at);
     },
     [](Rule r) {
       const Attrs &at = r.a.node.attrs;
       return matmulGrad(r.x(0), r.x(1), r.dy(), at.transA, at.transB);
     },
     nullptr, false, kTrans},

    // Mode ops are specialised away before differentiation (Modes.h).
    {Op::Dropout, sameShape, nullptr, nullptr, false, kValue | kK},
    {Op::BatchNorm,
     [](const std::vector<const Shape *> &in, const Attrs &) {
       const Shape &x = *in[0];
       if (x.rank() < 2 || x.dims[1] == kBatch)
         return fail(fmt::format("batch norm takes [N, C, ...], got {}", x.str()));
       Shape channel{{x.dims[1]}};
       for (size_t i = 1; i < 5; ++i)
         if (!(*in[i] == channel))
           return fail(fmt::format("batch norm over {} channels needs per-channel tensors {}, "
                                   "got {}",
                                   x.dims[1], channel.str(), in[i]->str()));
       if (in[5]->rank() != 0)
         return fail("batch norm counts its batches in a scalar");
       return ok(x);
     },
     nullptr, nullptr, false, kValue | kMomentum},

    {Op::Assign,
     [](const std::vector<const Shape *> &in, const Attrs &) {
       if (!(*in[0] == *in[1]))
         return fail(fmt::format("cannot assign {} to {}", in[1]->str(), in[0]->str()));
       return ok(Shape{});
     },
     nullptr,
     nullptr, true, kNone},
};

constexpr size_t kOpCount = std::size(kRows);
static_assert(std::size(kRules) == kOpCount, "one rule row per op of Ops.def");

const OpRules &rules(Op op) {
  const OpRules &r = kRules[static_cast<size_t>(op)];
  assert(r.op == op && "kRules must follow the order of Ops.def");
  return r;
}

} // namespace

bool tilingMaxPool(const Node &n) {
  if (n.op != Op::MaxPool2d && n.op != Op::MaxPool2dIndex && n.op != Op::WindowTakeGrad)
    return false;
  WindowGeometry g = windowGeometry(n.op, n.attrs, nullptr);
  return g.sh == g.kh && g.sw == g.kw && g.pt == 0 && g.pb == 0 && g.pl == 0 && g.pr == 0 &&
         g.kh * g.kw <= 16;
}

WindowGeometry windowGeometry(Op op, const Attrs &at, const Shape *weight) {
  WindowGeometry w;
  const std::vector<int64_t> &v = at.window;
  bool conv = op == Op::Conv2d || op == Op::Conv2dGradInput || op == Op::Conv2dGradWeight;
  size_t base = conv ? 0 : 2;
  assert(v.size() == base + 6 && "window attributes");
  if (conv) {
    assert(weight && weight->rank() == 4 && "a convolution's weight");
    w.kh = weight->dims[2];
    w.kw = weight->dims[3];
  } else {
    w.kh = v[0];
    w.kw = v[1];
  }
  w.sh = v[base];
  w.sw = v[base + 1];
  w.pt = v[base + 2];
  w.pb = v[base + 3];
  w.pl = v[base + 4];
  w.pr = v[base + 5];
  return w;
}

double evalElementwise(Op op, double a, double b, const Attrs &attrs) {
  EvalRule eval = rules(op).eval;
  assert(eval && "not an elementwise op");
  return eval(a, b, attrs);
}

bool joinsEpilogue(Op op) { return rules(op).epilogue; }

uint64_t dropoutThreshold(double p) { return static_cast<uint64_t>(std::llround(p * 16777216.0)); }

std::string attrKey(const Node &n) {
  unsigned use = rules(n.op).attrs;
  std::string key;
  if (use & kName)
    key += "name=" + n.attrs.name + ";";
  if (use & kK)
    key += fmt::format("k={};", n.attrs.k);
  if (use & kShape)
    key += "shape=" + n.attrs.shape.str() + ";";
  if (use & kValue) {
    uint64_t bits; // the exact value: -0.0 and 0.0 differ
    std::memcpy(&bits, &n.attrs.value, sizeof bits);
    key += fmt::format("value={};", bits);
  }
  if (use & kTrans)
    key += fmt::format("trans={}{};", n.attrs.transA, n.attrs.transB);
  if (use & kMomentum)
    key += fmt::format("momentum={};", n.attrs.momentum);
  if (use & kWindow)
    key += fmt::format("window={};", fmt::join(n.attrs.window, ","));
  if (n.attrs.integer)
    key += "i64;";
  return key;
}

std::string attrText(const Node &n, bool beforeOperands) {
  unsigned use = rules(n.op).attrs;
  if (beforeOperands) {
    if (use & kName)
      return fmt::format(" \"{}\"", n.attrs.name);
    if (use & kValue && n.op == Op::Const)
      return fmt::format(" {}", n.attrs.value);
    return {};
  }
  std::string s;
  if (n.op == Op::Dropout || n.op == Op::DropoutTrain)
    return fmt::format(", p {}, stream {}", n.attrs.value, n.attrs.k);
  if (n.op == Op::BatchNorm)
    return fmt::format(", eps {}, momentum {}", n.attrs.value, n.attrs.momentum);
  if (use & kK && !(use & kName))
    s += fmt::format(", {}", n.attrs.k);
  if (use & kValue && n.op != Op::Const)
    s += fmt::format(", {}", n.attrs.value);
  if (use & kWindow)
    s += fmt::format(" window [{}]", fmt::join(n.attrs.window, ", "));
  if (use & kShape && !(use & kName))
    s += fmt::format(" to {}", n.attrs.shape.str());
  if (use & kTrans) {
    if (n.attrs.transA)
      s += " transA";
    if (n.attrs.transB)
      s += " transB";
  }
  return s;
}

ShapeResult inferShape(Op op, const std::vector<const Shape *> &in, const Attrs &attrs) {
  int arity = opArity(op);
  if (arity >= 0 && in.size() != static_cast<size_t>(arity))
    return fail(fmt::format("{} takes {} operand(s), got {}", opName(op), arity, in.size()));
  return rules(op).shape(in, attrs);
}

namespace {
std::optional<Op> faultyOp;  // see injectGradientFault
std::optional<Op> missingOp; // see injectGradientFault
} // namespace

bool isDifferentiable(Op op) { return rules(op).grad != nullptr && missingOp != op; }

bool injectGradientFault(const std::string &spec) {
  std::string name = spec;
  bool missing = false;
  if (size_t colon = spec.find(':'); colon != std::string::npos) {
    if (spec.substr(colon + 1) != "missing")
      return false;
    name = spec.substr(0, colon);
    missing = true;
  }
  for (const OpRules &r : kRules)
    if (name == opName(r.op) && r.grad) {
      (missing ? missingOp : faultyOp) = r.op;
      return true;
    }
  return false;
}

std::vector<ValueId> gradientOf(GradArgs args) {
  GradRule rule = rules(args.node.op).grad;
  assert(rule && "gradientOf called on an op without a gradient");
  std::vector<ValueId> out = rule(Rule{args});
  if (faultyOp == args.node.op)
    for (ValueId &c : out)
      if (c != kNoValue)
        c = args.g.binary(Op::Mul, c, args.g.constant(1.5));
  return out;
}

} // namespace netc
