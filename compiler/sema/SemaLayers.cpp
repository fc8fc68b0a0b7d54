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
  Layer layer{row, ref.name, {}, {}, {}, {}, ref.loc, {}};
  if (row->lowering == Lowering::Conv || row->lowering == Lowering::Pool)
    return windowLayer(ref, *row, prefix, std::move(layer));
  if (row->lowering == Lowering::BatchNorm || row->lowering == Lowering::Dropout)
    return modeLayer(ref, prefix, std::move(layer));
  if (row->lowering == Lowering::Spectrogram)
    return spectrogramLayer(ref, std::move(layer));
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

std::optional<std::vector<int64_t>> Sema::sizes(const ast::Arg &a, const char *what, size_t most,
                                                int64_t least) {
  std::vector<ast::Expr> items;
  if (const auto *list = boost::get<boost::spirit::x3::forward_ast<ast::List>>(&a.value))
    items = list->get().items;
  else
    items.push_back(a.value);
  if (items.empty() || items.size() > most || (most == 4 && items.size() == 3)) {
    diags_.error(a.loc, fmt::format("{} is a number or a list of {} numbers", what,
                                    most == 4 ? "2 (height, width) or 4 (top, bottom, left, right)"
                                              : "2 (height, width)"));
    return std::nullopt;
  }
  std::vector<int64_t> out;
  for (const ast::Expr &e : items) {
    auto v = constValue(e, /*quiet=*/false);
    if (!v)
      return std::nullopt;
    if (*v != std::floor(*v) || *v < static_cast<double>(least) || *v > 65536) {
      diags_.error(a.loc, fmt::format("{} must be whole numbers from {} to 65536", what, least));
      return std::nullopt;
    }
    out.push_back(static_cast<int64_t>(*v));
  }
  return out;
}

std::optional<Layer> Sema::windowLayer(const ast::LayerRef &ref, const Builtin &row,
                                       const std::string &prefix, Layer layer) {
  bool conv = row.lowering == Lowering::Conv;
  std::vector<std::string> names =
      conv ? std::vector<std::string>{"in", "out", "kernel", "stride", "padding", "bias"}
           : std::vector<std::string>{"kernel", "stride", "padding"};
  bool ok = true;
  auto slots = matchArgs(ref.args, names, ref.name, "argument",
                         fmt::format("'{}' takes at most {}: {}", ref.name,
                                     counted(names.size(), "argument"), row.usage),
                         ok);
  if (!slots || !ok)
    return std::nullopt;
  std::vector<const ast::Arg *> given(names.size(), nullptr);
  for (size_t i = 0; i < ref.args.size(); ++i)
    given[(*slots)[i]] = &ref.args[i];
  auto slot = [&](const char *name) -> const ast::Arg * {
    return given[static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin())];
  };
  // kernel = 3 or [3, 5], stride likewise, padding also [top, bottom, left, right]
  auto hw = [&](const char *name, std::vector<int64_t> fallback, size_t most,
                int64_t least) -> std::optional<std::vector<int64_t>> {
    const ast::Arg *a = slot(name);
    auto v = a ? sizes(*a, name, most, least) : std::optional(fallback);
    if (v && v->size() == 1)
      v->push_back(v->front());
    return v;
  };
  for (const char *required : conv ? std::vector<const char *>{"in", "out", "kernel"}
                                   : std::vector<const char *>{"kernel"})
    if (!slot(required)) {
      diags_.error(ref.loc,
                   fmt::format("'{}' needs the argument '{}': {}", ref.name, required, row.usage));
      return std::nullopt;
    }
  auto kernel = hw("kernel", {}, 2, 1);
  if (!kernel)
    return std::nullopt;
  auto stride = hw("stride", conv ? std::vector<int64_t>{1} : *kernel, 2, 1);
  auto padding = hw("padding", {0}, 4, 0);
  if (!stride || !padding)
    return std::nullopt;
  std::vector<int64_t> pad = *padding; // (h, w) or (top, bottom, left, right)
  if (pad.size() == 2)
    pad = {pad[0], pad[0], pad[1], pad[1]};
  if (!conv && (pad[0] * 2 > (*kernel)[0] || pad[1] * 2 > (*kernel)[0] ||
                pad[2] * 2 > (*kernel)[1] || pad[3] * 2 > (*kernel)[1])) {
    diags_.error(ref.loc, "pooling pads at most half the kernel on each side (as PyTorch)");
    return std::nullopt;
  }
  if (row.op == Op::AvgPool2d &&
      std::any_of(pad.begin(), pad.end(), [](int64_t p) { return p != 0; })) {
    diags_.error(ref.loc, "avg_pool2d takes no padding yet");
    return std::nullopt;
  }
  layer.window = {(*stride)[0], (*stride)[1], pad[0], pad[1], pad[2], pad[3]};
  if (!conv) {
    layer.window.insert(layer.window.begin(), {(*kernel)[0], (*kernel)[1]});
    return layer;
  }
  int64_t channels[2] = {0, 0}; // in, out
  for (int k = 0; k < 2; ++k) {
    auto v = sizes(*slot(k == 0 ? "in" : "out"), k == 0 ? "in" : "out", 1, 1);
    if (!v)
      return std::nullopt;
    channels[k] = v->front();
  }
  bool bias = true;
  if (const ast::Arg *a = slot("bias")) {
    auto v = constValue(a->value, /*quiet=*/false);
    if (!v)
      return std::nullopt;
    bias = *v != 0;
  }
  int64_t in = channels[0], out = channels[1];
  layer.args = {static_cast<double>(in), static_cast<double>(out)};
  // PyTorch's default: uniform in ±1/sqrt(fan_in), fan_in = in · kh · kw,
  // for the weight and the bias.
  double bound = 1.0 / std::sqrt(static_cast<double>(in * (*kernel)[0] * (*kernel)[1]));
  InitSpec init{InitSpec::Kind::Uniform, -bound, bound};
  layer.params.push_back(
      addParam(prefix + "weight", Shape{{out, in, (*kernel)[0], (*kernel)[1]}}, init, ref.loc));
  if (bias)
    layer.params.push_back(addParam(prefix + "bias", Shape{{out}}, init, ref.loc));
  return layer;
}

ValueId Sema::applyWindow(const Layer &l, ValueId x, ast::Loc loc) {
  const Shape s = model_.graph.shape(x);
  bool conv = l.row->lowering == Lowering::Conv;
  if (s.rank() != 4 || s.dims[0] != kBatch) {
    layerError(l, loc, fmt::format("{} takes images [N, C, H, W], got {}", l.kind, s.str()));
    return kNoValue;
  }
  if (conv && s.dims[1] != static_cast<int64_t>(l.args[0])) {
    layerError(l, loc,
               fmt::format("conv2d({}, {}, ...) expects {} channels, got {}", l.args[0], l.args[1],
                           l.args[0], s.str()));
    return kNoValue;
  }
  Attrs a;
  a.window = l.window;
  std::vector<ValueId> in = {x};
  if (conv)
    in.push_back(l.params[0]);
  std::vector<const Shape *> shapes;
  for (ValueId v : in)
    shapes.push_back(&model_.graph.shape(v));
  ShapeResult r = inferShape(l.row->op, shapes, a);
  if (!r.error.empty()) {
    layerError(l, loc, r.error);
    return kNoValue;
  }
  ValueId y = node(l.row->op, in, a, l.loc);
  if (!conv || l.params.size() < 2)
    return y;
  Attrs column; // the bias [out] as [out, 1, 1], broadcast over N, H, W
  column.shape = Shape{{static_cast<int64_t>(l.args[1]), 1, 1}};
  return node(Op::Add, {y, node(Op::Reshape, {l.params[1]}, column, l.loc)}, {}, l.loc);
}

std::optional<Layer> Sema::modeLayer(const ast::LayerRef &ref, const std::string &prefix,
                                     Layer layer) {
  if (layer.row->lowering == Lowering::Dropout) {
    auto v = bindArgs(ref.loc, ref.name, ref.args, Signature{{{"p", 0.5}}});
    if (!v)
      return std::nullopt;
    if (!((*v)[0] >= 0 && (*v)[0] < 1)) {
      diags_.error(ref.loc,
                   fmt::format("dropout's p is a probability from 0 to below 1, not {}", (*v)[0]));
      return std::nullopt;
    }
    layer.args = *v;
    return layer;
  }
  auto v = bindArgs(ref.loc, ref.name, ref.args,
                    Signature{{{"channels", std::nullopt}, {"eps", 1e-5}, {"momentum", 0.1}}});
  if (!v)
    return std::nullopt;
  double channels = (*v)[0], eps = (*v)[1], momentum = (*v)[2];
  if (channels < 1 || channels > (1 << 24) || channels != std::floor(channels)) {
    diags_.error(ref.loc,
                 fmt::format("{}(channels) needs a whole number from 1 to 2^24", ref.name));
    return std::nullopt;
  }
  if (!(eps > 0) || !(momentum >= 0 && momentum <= 1)) {
    diags_.error(ref.loc, fmt::format("{} needs eps > 0 and momentum from 0 to 1", ref.name));
    return std::nullopt;
  }
  layer.args = *v;
  // PyTorch's BatchNorm: weight 1, bias 0; running mean 0, var 1, no batches.
  Shape c{{static_cast<int64_t>(channels)}};
  layer.params.push_back(addParam(prefix + "weight", c, {InitSpec::Kind::Constant, 1, 0}, ref.loc));
  layer.params.push_back(addParam(prefix + "bias", c, {InitSpec::Kind::Constant, 0, 0}, ref.loc));
  layer.buffers.push_back(addBuffer(prefix + "running_mean", c, 0, false, ref.loc));
  layer.buffers.push_back(addBuffer(prefix + "running_var", c, 1, false, ref.loc));
  layer.buffers.push_back(addBuffer(prefix + "num_batches_tracked", Shape{}, 0, true, ref.loc));
  return layer;
}

ValueId Sema::applyModeLayer(const Layer &l, ValueId x, ast::Loc loc) {
  Attrs a;
  a.value = l.args[0];
  if (l.row->lowering == Lowering::Dropout) {
    a.k = dropoutStreams_++;
    return node(Op::Dropout, {x}, a, l.loc);
  }
  const Shape s = model_.graph.shape(x);
  bool image = l.kind == "batch_norm2d";
  auto channels = static_cast<int64_t>(l.args[0]);
  if (s.rank() < 2 || s.dims[0] != kBatch || (image ? s.rank() != 4 : s.rank() > 3)) {
    layerError(l, loc,
               fmt::format("{} takes {}, got {}", l.kind,
                           image ? "images [N, C, H, W]" : "[N, C] or [N, C, L]", s.str()));
    return kNoValue;
  }
  if (s.dims[1] != channels) {
    layerError(l, loc,
               fmt::format("{}({}) expects {} channels (dimension 1), got {}", l.kind, channels,
                           channels, s.str()));
    return kNoValue;
  }
  a.value = l.args[1];
  a.momentum = l.args[2];
  std::vector<ValueId> in = {x, l.params[0], l.params[1]};
  in.insert(in.end(), l.buffers.begin(), l.buffers.end());
  return node(Op::BatchNorm, in, a, l.loc);
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
  if (l.row->lowering == Lowering::Conv || l.row->lowering == Lowering::Pool)
    return applyWindow(l, x, loc);
  if (l.row->lowering == Lowering::BatchNorm || l.row->lowering == Lowering::Dropout)
    return applyModeLayer(l, x, loc);
  if (l.row->lowering == Lowering::Spectrogram)
    return applySpectrogram(l, x, loc);
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
