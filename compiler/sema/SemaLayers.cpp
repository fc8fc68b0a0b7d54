// SemaLayers.cpp - layers (from the registry, Builtins.h) and their
// application: parameters named as PyTorch's nn.Sequential names them.
#include "compiler/sema/SemaImpl.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>

namespace netc::sema {

std::optional<Layer> Sema::makeLayer(const ast::LayerRef &ref, const std::string &prefix) {
  const Builtin *row = findBuiltin(ref.name, BuiltinKind::Layer);
  if (!row) {
    diags_.error(ref.loc, fmt::format("unknown layer '{}'", ref.name));
    std::vector<std::string> names = builtinNames(BuiltinKind::Layer);
    for (const auto &[n, b] : scope_)
      if (b.kind == Binding::Kind::Sequence)
        names.push_back(n);
    suggest(ref.name, names);
    return std::nullopt;
  }
  Layer layer{row, ref.name, {}, {}, ref.loc};
  if (row->lowering == Lowering::Linear) {
    auto v = bindArgs(ref.loc, "linear", ref.args,
                      Signature{{{"in", std::nullopt}, {"out", std::nullopt}, {"bias", 1.0}}});
    if (!v)
      return std::nullopt;
    double in = (*v)[0], out = (*v)[1];
    for (double d : {in, out})
      if (d < 1 || d > (1 << 24) || d != std::floor(d)) {
        diags_.error(ref.loc, "linear(in, out) needs whole numbers from 1 to 2^24");
        return std::nullopt;
      }
    layer.args = *v;
    // PyTorch's default: kaiming_uniform(a = sqrt(5)) on the weight and the
    // same bound, 1/sqrt(fan_in), for the bias.
    double bound = 1.0 / std::sqrt(in);
    InitSpec init{InitSpec::Kind::Uniform, -bound, bound};
    auto i = static_cast<int64_t>(in), o = static_cast<int64_t>(out);
    layer.params.push_back(addParam(prefix + "weight", Shape{{o, i}}, init, ref.loc));
    if ((*v)[2] != 0)
      layer.params.push_back(addParam(prefix + "bias", Shape{{o}}, init, ref.loc));
    return layer;
  }
  if (row->lowering == Lowering::Flatten) {
    auto v = bindArgs(ref.loc, "flatten", ref.args, Signature{{{"start", 1.0}, {"end", -1.0}}});
    if (!v)
      return std::nullopt;
    layer.args = *v;
    return layer;
  }
  if (row->lowering == Lowering::Row) {
    auto v = bindArgs(ref.loc, ref.name, ref.args, Signature{{{"dim", -1.0}}});
    if (!v)
      return std::nullopt;
    layer.args = *v;
    return layer;
  }
  assert(row->lowering == Lowering::Elementwise && "a layer row sema knows");
  if (!bindArgs(ref.loc, ref.name, ref.args, Signature{}))
    return std::nullopt;
  return layer;
}

void Sema::layerError(const Layer &l, ast::Loc applied, const std::string &message) {
  diags_.error(l.loc, message);
  if (applied.begin != l.loc.begin)
    diags_.note(applied, "where the layer is applied");
}

ValueId Sema::applyLayer(const Layer &l, ValueId x, ast::Loc loc) {
  if (x == kNoValue)
    return kNoValue;
  Graph &g = model_.graph;
  if (l.row->lowering == Lowering::Linear) {
    const Shape s = g.shape(x);
    auto in = static_cast<int64_t>(l.args[0]);
    if (s.rank() == 0 || s.dims.back() != in) {
      layerError(l, loc,
                 fmt::format("linear({}, {}) expects inputs whose last "
                             "dimension is {}, got {}",
                             l.args[0], l.args[1], in, s.str()));
      return kNoValue;
    }
    if (s.rank() > 2) {
      layerError(l, loc,
                 fmt::format("linear takes 1-d or 2-d inputs, got {}; "
                             "flatten first",
                             s.str()));
      return kNoValue;
    }
    ValueId y;
    Attrs nt;
    nt.transB = true;
    if (s.rank() == 1) {
      // x [in] -> [1, in] · W^T -> [1, out] -> [out]
      Attrs row;
      row.shape = Shape{{1, in}};
      ValueId x2 = node(Op::Reshape, {x}, row, l.loc);
      ValueId y2 = node(Op::MatMul, {x2, l.params[0]}, nt, l.loc);
      Attrs flat;
      flat.shape = Shape{{static_cast<int64_t>(l.args[1])}};
      y = node(Op::Reshape, {y2}, flat, l.loc);
    } else {
      y = node(Op::MatMul, {x, l.params[0]}, nt, l.loc);
    }
    if (l.params.size() > 1)
      y = node(Op::Add, {y, l.params[1]}, {}, l.loc);
    return y;
  }
  if (l.row->lowering == Lowering::Flatten)
    return flatten(x, l.args[0], l.args[1], loc);
  if (l.row->lowering == Lowering::Row)
    return rowOp(l.kind, x, l.args[0], l.loc);
  return node(l.row->op, {x}, {}, l.loc);
}

ValueId Sema::rowOp(const std::string &name, ValueId x, double dim, ast::Loc loc) {
  if (x == kNoValue)
    return kNoValue;
  auto rank = static_cast<double>(model_.graph.shape(x).rank());
  if (dim != std::floor(dim) || !(dim == -1 || dim == rank - 1)) {
    diags_.error(loc, fmt::format("{} works along the last axis only (dim = -1 or {}), "
                                  "not dim = {}",
                                  name, rank - 1, dim));
    return kNoValue;
  }
  return node(name == "softmax" ? Op::Softmax : Op::LogSoftmax, {x}, {}, loc);
}

ValueId Sema::flatten(ValueId x, double startArg, double endArg, ast::Loc loc) {
  if (x == kNoValue)
    return kNoValue;
  Shape s = model_.graph.shape(x);
  if (s.rank() == 0)
    s.dims.push_back(1);
  auto rank = static_cast<int64_t>(s.rank());
  auto norm = [&](double d) { return static_cast<int64_t>(d < 0 ? d + rank : d); };
  int64_t start = norm(startArg), end = norm(endArg);
  if (startArg != std::floor(startArg) || endArg != std::floor(endArg) || start < 0 ||
      start >= rank || end < 0 || end >= rank || start > end) {
    diags_.error(loc, fmt::format("flatten({}, {}) is out of range for a tensor "
                                  "of shape {}",
                                  startArg, endArg, model_.graph.shape(x).str()));
    return kNoValue;
  }
  Shape out;
  int64_t merged = 1;
  bool batch = false;
  for (int64_t i = 0; i < rank; ++i) {
    int64_t d = s.dims[static_cast<size_t>(i)];
    if (i < start || i > end) {
      out.dims.push_back(d);
      continue;
    }
    if (d == kBatch)
      batch = true;
    else
      merged *= d;
    if (i == end) {
      if (batch && merged != 1) {
        diags_.error(loc, fmt::format("flatten({}, {}) would merge the batch "
                                      "dimension of {} with others",
                                      startArg, endArg, s.str()));
        return kNoValue;
      }
      out.dims.push_back(batch ? kBatch : merged);
    }
  }
  Attrs a;
  a.shape = out;
  return node(Op::Reshape, {x}, a, loc);
}

} // namespace netc::sema
