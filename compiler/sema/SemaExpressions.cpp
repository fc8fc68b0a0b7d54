// SemaExpressions.cpp - expressions to graph nodes: names, operators, the
// built-in functions of the registry (Builtins.h), losses, matrix products.
#include "compiler/sema/SemaImpl.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>

namespace netc::sema {

ValueId Sema::node(Op op, std::vector<ValueId> in, Attrs attrs, ast::Loc loc) {
  for (ValueId v : in)
    if (v == kNoValue)
      return kNoValue;
  for (size_t k = 0; k < in.size(); ++k) {
    bool labels = (op == Op::Pick || op == Op::Scatter) && k == 1;
    bool integer = model_.graph.node(in[k]).dtype == DType::I64;
    if (integer != labels) {
      diags_.error(loc, integer ? "class labels are integers: use them with "
                                  "cross_entropy(scores, labels) or nll(log_probs, labels)"
                                : "expected integer class labels here");
      return kNoValue;
    }
  }
  std::vector<const Shape *> shapes;
  for (ValueId v : in)
    shapes.push_back(&model_.graph.shape(v));
  ShapeResult r = inferShape(op, shapes, attrs);
  if (!r.error.empty()) {
    diags_.error(loc, r.error);
    return kNoValue;
  }
  return model_.graph.add(op, std::move(in), std::move(attrs), loc);
}

ValueId Sema::expr(const ast::Expr &e) {
  return boost::apply_visitor([&](const auto &n) { return lower(n); }, e);
}

ValueId Sema::lower(const ast::Number &n) { return model_.graph.constant(n.value, n.loc); }

ValueId Sema::lower(const ast::Ident &n) {
  if (n.name == "pi")
    return model_.graph.constant(kPi, n.loc);
  auto it = scope_.find(n.name);
  if (it == scope_.end()) {
    diags_.error(n.loc, fmt::format("unknown name '{}'", n.name));
    suggest(n.name, valueNames());
    return kNoValue;
  }
  if (it->second.kind == Binding::Kind::Sequence) {
    diags_.error(n.loc, fmt::format("'{}' is a sequence of layers; apply it "
                                    "with `x -> {}`",
                                    n.name, n.name));
    return kNoValue;
  }
  return it->second.value;
}

ValueId Sema::lower(const ast::Paren &n) { return expr(n.inner); }

ValueId Sema::lower(const ast::StringLit &n) {
  diags_.error(n.loc, "a string is not a tensor");
  return kNoValue;
}

ValueId Sema::lower(const ast::List &n) {
  diags_.error(n.loc, "constant tensors are written in the data declaration: "
                      "data inline(x = [1, 2, 3])");
  return kNoValue;
}

ValueId Sema::lower(const ast::Unary &n) {
  ValueId v = expr(n.operand);
  return node(Op::Neg, {v}, {}, n.loc);
}

ValueId Sema::lower(const ast::Power &n) {
  ValueId base = expr(n.base);
  auto k = constValue(n.exponent, /*quiet=*/true);
  if (!k) {
    diags_.error(locOf(n.exponent), "the exponent must be a constant, e.g. x^3 or x^0.5");
    return kNoValue;
  }
  Attrs a;
  if (*k != std::floor(*k) || std::abs(*k) > 64) { // x^0.5: exp(c log x), for x > 0
    a.value = *k;
    return node(Op::Pow, {base}, a, n.loc);
  }
  a.k = static_cast<int64_t>(*k);
  return node(Op::PowI, {base}, a, n.loc);
}

ValueId Sema::lower(const ast::Chain &n) {
  ValueId acc = expr(n.first);
  uint32_t begin = n.loc.begin;
  for (const auto &l : n.rest) {
    ValueId rhs = expr(l.operand);
    ast::Loc loc{begin, locOf(l.operand).end};
    if (l.op == '@') {
      acc = matrixProduct(acc, rhs, loc);
      continue;
    }
    Op op = l.op == '+' ? Op::Add : l.op == '-' ? Op::Sub : l.op == '*' ? Op::Mul : Op::Div;
    acc = node(op, {acc, rhs}, {}, loc);
  }
  return acc;
}

ValueId Sema::matrixProduct(ValueId a, ValueId b, ast::Loc loc) {
  if (a == kNoValue || b == kNoValue)
    return kNoValue;
  Shape sa = model_.graph.shape(a), sb = model_.graph.shape(b);
  if (sa.rank() == 0 || sb.rank() == 0 || sa.rank() > 2 || sb.rank() > 2) {
    diags_.error(loc, fmt::format("@ multiplies vectors and matrices (1-d or 2-d), not {} and {}",
                                  sa.str(), sb.str()));
    return kNoValue;
  }
  auto reshape = [&](ValueId v, Shape to) {
    Attrs r;
    r.shape = std::move(to);
    return node(Op::Reshape, {v}, r, loc);
  };
  ValueId a2 = sa.rank() == 1 ? reshape(a, Shape{{1, sa.dims[0]}}) : a;
  ValueId b2 = sb.rank() == 1 ? reshape(b, Shape{{sb.dims[0], 1}}) : b;
  if (a2 == kNoValue || b2 == kNoValue)
    return kNoValue;
  int64_t ka = model_.graph.shape(a2).dims[1], kb = model_.graph.shape(b2).dims[0];
  if (ka != kb) {
    auto dim = [](int64_t d) { return d == kBatch ? std::string("N") : std::to_string(d); };
    diags_.error(loc, fmt::format("@ of {} and {}: the inner dimensions {} and {} differ", sa.str(),
                                  sb.str(), dim(ka), dim(kb)));
    return kNoValue;
  }
  ValueId c = node(Op::MatMul, {a2, b2}, {}, loc);
  if (c == kNoValue || (sa.rank() == 2 && sb.rank() == 2))
    return c;
  Shape out;
  if (sa.rank() == 2)
    out.dims.push_back(sa.dims[0]);
  if (sb.rank() == 2)
    out.dims.push_back(sb.dims[1]);
  return reshape(c, out);
}

ValueId Sema::lower(const ast::Call &c) {
  const Builtin *f = findBuiltin(c.callee, BuiltinKind::Function);
  if (!f)
    return notAFunction(c);
  switch (f->lowering) {
  case Lowering::Elementwise:
  case Lowering::Sum:
  case Lowering::Mean: {
    auto args = positionalValues(c, 1);
    if (!args)
      return kNoValue;
    if (f->lowering == Lowering::Mean)
      return mean((*args)[0], c.loc);
    return node(f->op, {(*args)[0]}, {}, c.loc);
  }
  case Lowering::Row: {
    if (c.args.empty() || !c.args[0].key.empty()) {
      diags_.error(c.loc, fmt::format("{} needs a tensor first", f->usage));
      return kNoValue;
    }
    ValueId x = expr(c.args[0].value);
    std::vector<ast::Arg> rest(c.args.begin() + 1, c.args.end());
    auto v = bindArgs(c.loc, c.callee, rest, Signature{{{"dim", -1.0}}});
    if (!v)
      return kNoValue;
    return rowOp(c.callee, x, (*v)[0], c.loc);
  }
  case Lowering::Stack: {
    std::vector<ValueId> in;
    for (const auto &a : c.args) {
      if (!a.key.empty()) {
        diags_.error(a.loc, "stack takes tensors only");
        return kNoValue;
      }
      in.push_back(expr(a.value));
    }
    if (in.empty()) {
      diags_.error(c.loc, "stack needs at least one tensor");
      return kNoValue;
    }
    return node(Op::Stack, in, {}, c.loc);
  }
  case Lowering::PointwiseLoss:
    return builtinLoss(c);
  case Lowering::ClassLoss:
    return classificationLoss(c);
  case Lowering::Flatten: {
    ValueId x = c.args.empty() ? kNoValue : expr(c.args[0].value);
    std::vector<ast::Arg> rest(c.args.begin() + (c.args.empty() ? 0 : 1), c.args.end());
    if (c.args.empty() || !c.args[0].key.empty()) {
      diags_.error(c.loc, fmt::format("{} needs a tensor first", f->usage));
      return kNoValue;
    }
    auto v = bindArgs(c.loc, "flatten", rest, Signature{{{"start", 0.0}, {"end", -1.0}}});
    if (!v)
      return kNoValue;
    return flatten(x, (*v)[0], (*v)[1], c.loc);
  }
  case Lowering::Linear:
  case Lowering::Conv:
  case Lowering::Pool:
  case Lowering::BatchNorm:
  case Lowering::Dropout:
  case Lowering::Spectrogram:
  case Lowering::None:
    break;
  }
  assert(false && "every function row has a lowering");
  return kNoValue;
}

ValueId Sema::notAFunction(const ast::Call &c) {
  if (findBuiltin(c.callee, BuiltinKind::Layer)) {
    diags_.error(c.loc,
                 fmt::format("'{}' is a layer; apply it with `x -> {}(...)`", c.callee, c.callee));
    return kNoValue;
  }
  if (findBuiltin(c.callee, BuiltinKind::Initializer)) {
    diags_.error(c.loc,
                 fmt::format("'{}' initialises a parameter: `param w = {}()`", c.callee, c.callee));
    return kNoValue;
  }
  diags_.error(c.loc, fmt::format("unknown function '{}'", c.callee));
  suggest(c.callee, builtinNames(BuiltinKind::Function));
  return kNoValue;
}

ValueId Sema::lower(const ast::Pipe &p) {
  ValueId v = expr(p.input);
  for (const auto &ref : p.layers) {
    auto it = scope_.find(ref.name);
    if (it != scope_.end() && it->second.kind == Binding::Kind::Sequence) {
      if (!ref.args.empty()) {
        diags_.error(ref.loc, "a sequence takes no arguments");
        return kNoValue;
      }
      const Sequence &seq = sequences_[it->second.sequence];
      if (seq.broken)
        return kNoValue;
      for (const Layer &l : seq.layers)
        v = applyLayer(l, v, ref.loc);
      continue;
    }
    auto layer = makeLayer(ref, fmt::format("{}.", unnamedIndex_));
    ++unnamedIndex_;
    if (!layer)
      return kNoValue;
    v = applyLayer(*layer, v, ref.loc);
  }
  return v;
}

std::optional<std::vector<ValueId>> Sema::positionalValues(const ast::Call &c, size_t count) {
  if (c.args.size() != count) {
    diags_.error(c.loc, fmt::format("'{}' takes {}, got {}", c.callee, counted(count, "argument"),
                                    c.args.size()));
    return std::nullopt;
  }
  std::vector<ValueId> out;
  for (const auto &a : c.args) {
    if (!a.key.empty()) {
      diags_.error(a.loc, fmt::format("'{}' takes no named arguments", c.callee));
      return std::nullopt;
    }
    out.push_back(expr(a.value));
  }
  for (ValueId v : out)
    if (v == kNoValue)
      return std::nullopt;
  return out;
}

ValueId Sema::mean(ValueId x, ast::Loc loc) {
  if (x == kNoValue)
    return kNoValue;
  const Shape s = model_.graph.shape(x);
  Graph &g = model_.graph;
  ValueId count = g.constant(static_cast<double>(s.constNumel()), loc);
  if (s.hasBatch())
    count = g.binary(Op::Mul, count, g.add(Op::BatchSize, {}, {}, loc), loc);
  return g.binary(Op::Div, g.unary(Op::Sum, x, loc), count, loc);
}

ValueId Sema::builtinLoss(const ast::Call &c) {
  std::vector<ast::Arg> tensors, options;
  for (const auto &a : c.args)
    (a.key.empty() && tensors.size() < 2 ? tensors : options).push_back(a);
  if (tensors.size() != 2) {
    diags_.error(c.loc, fmt::format("{}(prediction, target, reduction = mean) "
                                    "needs two tensors",
                                    c.callee));
    return kNoValue;
  }
  std::string reduction = "mean";
  for (const auto &o : options) {
    const auto *id = boost::get<ast::Ident>(&o.value);
    if (o.key != "reduction" || !id || (id->name != "mean" && id->name != "sum")) {
      diags_.error(o.loc, "expected `reduction = mean` or `reduction = sum`");
      return kNoValue;
    }
    reduction = id->name;
  }
  ValueId p = expr(tensors[0].value), t = expr(tensors[1].value);
  if (p == kNoValue || t == kNoValue)
    return kNoValue;
  if (!(model_.graph.shape(p) == model_.graph.shape(t))) {
    diags_.error(c.loc,
                 fmt::format("{} compares a prediction of shape {} with a "
                             "target of shape {}; they must match",
                             c.callee, model_.graph.shape(p).str(), model_.graph.shape(t).str()));
    return kNoValue;
  }
  recordPrediction(p, t, regressionKind(c.callee, p));
  Graph &g = model_.graph;
  ValueId err = pointwiseLoss(c.callee, p, t, c.loc);
  return reduction == "sum" ? g.unary(Op::Sum, err, c.loc) : mean(err, c.loc);
}

PredictionKind Sema::regressionKind(const std::string &loss, ValueId p) {
  const Shape &s = model_.graph.shape(p);
  bool one = s.constNumel() == 1;
  if (loss == "bce" && one)
    return PredictionKind::Probability;
  if (loss == "bce_with_logits" && one)
    return PredictionKind::Logit;
  return PredictionKind::Values;
}

void Sema::recordPrediction(ValueId value, ValueId target, PredictionKind kind) {
  if (model_.prediction.value != kNoValue)
    return;
  const Shape &s = model_.graph.shape(value);
  if (s.rank() == 0 || s.dims[0] != kBatch)
    return;
  model_.prediction = {value, kind, fieldOf(target)};
}

int Sema::fieldOf(ValueId v) const {
  while (model_.graph.node(v).op == Op::Reshape)
    v = model_.graph.node(v).inputs[0];
  const Node &n = model_.graph.node(v);
  return n.op == Op::Input ? static_cast<int>(n.attrs.k) : -1;
}

ValueId Sema::pointwiseLoss(const std::string &kind, ValueId p, ValueId t, ast::Loc loc) {
  Graph &g = model_.graph;
  if (kind == "mse" || kind == "l1") {
    ValueId diff = g.binary(Op::Sub, p, t, loc);
    if (kind == "l1")
      return g.unary(Op::Abs, diff, loc);
    Attrs two;
    two.k = 2;
    return g.add(Op::PowI, {diff}, two, loc);
  }
  ValueId one = g.constant(1.0, loc);
  ValueId notT = g.binary(Op::Sub, one, t, loc);
  if (kind == "bce") {
    ValueId logP = g.unary(Op::Log, p, loc);
    ValueId notP = g.binary(Op::Sub, one, p, loc);
    ValueId logNotP = g.unary(Op::Log, notP, loc);
    ValueId hit = g.binary(Op::Mul, t, logP, loc);
    ValueId miss = g.binary(Op::Mul, notT, logNotP, loc);
    return g.unary(Op::Neg, g.binary(Op::Add, hit, miss, loc), loc);
  }
  ValueId positive = g.unary(Op::Relu, p, loc);
  ValueId xt = g.binary(Op::Mul, p, t, loc);
  ValueId negAbs = g.unary(Op::Neg, g.unary(Op::Abs, p, loc), loc);
  ValueId softplus =
      g.unary(Op::Log, g.binary(Op::Add, one, g.unary(Op::Exp, negAbs, loc), loc), loc);
  ValueId linear = g.binary(Op::Sub, positive, xt, loc);
  return g.binary(Op::Add, linear, softplus, loc);
}

ValueId Sema::classificationLoss(const ast::Call &c) {
  if (c.args.size() != 2 || !c.args[0].key.empty() || !c.args[1].key.empty()) {
    diags_.error(c.loc, fmt::format("{}(scores, labels) takes two tensors", c.callee));
    return kNoValue;
  }
  ValueId scores = expr(c.args[0].value), labels = expr(c.args[1].value);
  if (scores == kNoValue || labels == kNoValue)
    return kNoValue;
  const Shape s = model_.graph.shape(scores);
  if (s.rank() != 2 || s.dims.back() == kBatch) {
    diags_.error(locOf(c.args[0].value),
                 fmt::format("{} needs scores of shape [N, classes], got {}", c.callee, s.str()));
    return kNoValue;
  }
  auto classes = static_cast<int64_t>(model_.data.classes.size());
  if (classes && s.dims.back() != classes) {
    diags_.error(locOf(c.args[0].value), fmt::format("{} over {} classes, but the data set has {}",
                                                     c.callee, s.dims.back(), classes));
    return kNoValue;
  }
  Op producer = model_.graph.node(scores).op;
  PredictionKind kind = PredictionKind::Logits;
  ValueId logp = scores;
  if (c.callee == "cross_entropy") {
    if (producer == Op::Softmax) {
      kind = PredictionKind::Probabilities;
      diags_.warning(model_.graph.node(scores).loc,
                     "cross_entropy applies log_softmax itself, so this softmax is "
                     "applied twice");
      diags_.note("the double softmax flattens the scores and costs accuracy "
                  "(1-7 points on MNIST in PyTorch); pass the logits, i.e. remove "
                  "this softmax, and apply softmax only when you want probabilities");
    }
    logp = node(Op::LogSoftmax, {scores}, {}, c.loc);
  } else {
    kind = PredictionKind::LogProbabilities;
    if (producer != Op::LogSoftmax)
      diags_.warning(c.loc, "nll expects log-probabilities, e.g. nll(x -> log_softmax, labels)");
  }
  ValueId picked = node(Op::Pick, {logp, labels}, {}, c.loc);
  if (picked == kNoValue)
    return kNoValue;
  recordPrediction(scores, labels, kind);
  return model_.graph.unary(Op::Neg, mean(picked, c.loc), c.loc);
}

} // namespace netc::sema
