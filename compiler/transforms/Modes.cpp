// Modes.cpp - the specialisation of mode ops, written with the graph's own
// arithmetic so autodiff differentiates the result like any other graph.
#include "compiler/transforms/Modes.h"

#include <cassert>

namespace netc {

namespace {

class Specializer {
public:
  Specializer(const Graph &in, Mode mode, const ModeOptions &options)
      : in_(in), mode_(mode), options_(options) {}

  Graph run() {
    map_.assign(in_.size(), kNoValue);
    for (size_t i = 0; i < in_.size(); ++i) {
      const Node &n = in_.node(static_cast<ValueId>(i));
      std::vector<ValueId> inputs;
      for (ValueId v : n.inputs)
        inputs.push_back(map_[static_cast<size_t>(v)]);
      ValueId v;
      if (n.op == Op::Dropout)
        v = dropout(n, inputs);
      else if (n.op == Op::BatchNorm)
        v = batchNorm(n, inputs);
      else
        v = out_.add(n.op, inputs, n.attrs, n.loc);
      map_[i] = v;
      if (!n.label.empty())
        out_.setLabel(v, n.label);
    }
    for (const auto &o : in_.outputs)
      out_.outputs.push_back({o.name, map_[static_cast<size_t>(o.value)]});
    for (ValueId e : in_.effects)
      out_.effects.push_back(map_[static_cast<size_t>(e)]);
    for (ValueId e : effects_)
      out_.effects.push_back(e);
    return std::move(out_);
  }

private:
  ValueId dropout(const Node &n, const std::vector<ValueId> &in) {
    if (mode_ == Mode::Eval || n.attrs.value == 0)
      return in[0]; // p = 0 keeps everything at scale 1, as PyTorch
    ValueId key[2];
    for (int i = 0; i < 2; ++i) {
      Attrs a;
      a.name = i == 0 ? "dropout_key_low" : "dropout_key_high";
      a.k = options_.keySlot + i;
      key[i] = out_.add(Op::HParam, {}, a, n.loc);
    }
    return out_.add(Op::DropoutTrain, {in[0], key[0], key[1]}, n.attrs, n.loc);
  }

  // x [N, C, ...]: per-channel tensors [C] act as [C, 1, ...] against it.
  ValueId batchNorm(const Node &n, const std::vector<ValueId> &in) {
    const Shape x = out_.shape(in[0]);
    Shape column{{x.dims[1]}};
    column.dims.resize(x.rank() - 1, 1);
    auto bin = [&](Op op, ValueId a, ValueId b) { return out_.add(op, {a, b}, {}, n.loc); };
    auto withShape = [&](Op op, ValueId v, const Shape &s) {
      Attrs a;
      a.shape = s;
      return out_.add(op, {v}, a, n.loc);
    };
    auto c = [&](double v) { return out_.constant(v, n.loc); };
    auto rsqrt = [&](ValueId v) {
      Attrs a;
      a.value = -0.5;
      return out_.add(Op::Pow, {bin(Op::Add, v, c(n.attrs.value))}, a, n.loc);
    };
    ValueId weight = withShape(Op::Reshape, in[1], column);
    ValueId bias = withShape(Op::Reshape, in[2], column);
    auto affine = [&](ValueId centred, ValueId inverseStd) {
      return bin(Op::Add, bin(Op::Mul, bin(Op::Mul, centred, inverseStd), weight), bias);
    };
    if (mode_ == Mode::Eval) {
      ValueId mean = withShape(Op::Reshape, in[3], column);
      ValueId var = withShape(Op::Reshape, in[4], column);
      return affine(bin(Op::Sub, in[0], mean), rsqrt(var));
    }
    // The elements per channel: N times the rest of the dimensions.
    double perExample = static_cast<double>(x.constNumel() / x.dims[1]);
    ValueId count = bin(Op::Mul, out_.add(Op::BatchSize, {}, {}, n.loc), c(perExample));
    ValueId mean = bin(Op::Div, withShape(Op::SumTo, in[0], column), count);
    ValueId centred = bin(Op::Sub, in[0], mean);
    // The variance's own centring stops the gradient at the mean: its
    // share, 2·Σ(x - mean)/count times the variance's adjoint, is 0 (the
    // deviations sum to 0), and without it the gradient has one sum and
    // two passes over x's shape fewer (PyTorch's closed form has none).
    // Simplify makes both centrings one after autodiff.
    ValueId deviation = bin(Op::Sub, in[0], out_.add(Op::StopGradient, {mean}, {}, n.loc));
    ValueId var =
        bin(Op::Div, withShape(Op::SumTo, bin(Op::Mul, deviation, deviation), column), count);
    // Named after the layer, so formulas (--explain-grad) stay readable.
    std::string layer = in_.node(n.inputs[1]).attrs.name;
    layer = layer.substr(0, layer.rfind('.'));
    out_.setLabel(mean, "batch_mean(" + layer + ")");
    out_.setLabel(var, "batch_var(" + layer + ")");
    ValueId y = affine(centred, rsqrt(var));

    // Running statistics, PyTorch's rule; the variance unbiased.
    double m = n.attrs.momentum;
    auto blend = [&](ValueId running, ValueId batch) {
      ValueId flat = withShape(Op::Reshape, batch, out_.shape(running));
      return bin(Op::Add, bin(Op::Mul, running, c(1 - m)), bin(Op::Mul, flat, c(m)));
    };
    ValueId unbiased = bin(Op::Mul, var, bin(Op::Div, count, bin(Op::Sub, count, c(1))));
    effects_.push_back(bin(Op::Assign, in[3], blend(in[3], mean)));
    effects_.push_back(bin(Op::Assign, in[4], blend(in[4], unbiased)));
    effects_.push_back(bin(Op::Assign, in[5], bin(Op::Add, in[5], c(1))));
    return y;
  }

  const Graph &in_;
  Mode mode_;
  ModeOptions options_;
  Graph out_;
  std::vector<ValueId> map_;
  std::vector<ValueId> effects_;
};

} // namespace

Graph specialize(const Graph &graph, Mode mode, const ModeOptions &options) {
  return Specializer(graph, mode, options).run();
}

bool hasRandomDropout(const Graph &graph) {
  for (const Node &n : graph.nodes())
    if (n.op == Op::Dropout && n.attrs.value != 0)
      return true;
  return false;
}

} // namespace netc
