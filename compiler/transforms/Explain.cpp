// Explain.cpp - printing a gradient as a formula.
//
// 1. Differentiate the loss with respect to the parameter and simplify, as
//    the pipeline does. 2. Print the gradient's expression tree: labelled
//    values (let bindings), parameters and inputs by name; everything else
//    by its op, with parentheses only where precedence needs them. 3. A
//    product is flattened into its factors and written parameter-side
//    first, the order in which the chain rule reads.
#include "compiler/transforms/Explain.h"
#include "compiler/transforms/Autodiff.h"
#include "compiler/transforms/Modes.h"
#include "compiler/transforms/Simplify.h"

#include <fmt/format.h>

#include <ostream>

namespace netc {

namespace {

enum Precedence { kSum = 1, kProduct = 2, kUnary = 3, kAtom = 4 };

class FormulaPrinter {
public:
  explicit FormulaPrinter(const Graph &g) : g_(g) {}

  std::string print(ValueId v, int context = 0) {
    auto [text, precedence] = format(v);
    return precedence < context ? "(" + text + ")" : text;
  }

private:
  const Node &node(ValueId v) const { return g_.node(v); }

  /// sigmoid(z) * (1 - sigmoid(z)) -> the z, else kNoValue.
  ValueId sigmoidDerivative(ValueId v) const {
    const Node &n = node(v);
    if (n.op != Op::Mul)
      return kNoValue;
    for (int i = 0; i < 2; ++i) {
      ValueId s = n.inputs[static_cast<size_t>(i)], rest = n.inputs[static_cast<size_t>(1 - i)];
      const Node &r = node(rest);
      if (node(s).op == Op::Sigmoid && r.op == Op::Sub && node(r.inputs[0]).op == Op::Const &&
          node(r.inputs[0]).attrs.value == 1.0 && r.inputs[1] == s)
        return node(s).inputs[0];
    }
    return kNoValue;
  }

  /// 1 - tanh(z) * tanh(z) -> the z, else kNoValue.
  ValueId tanhDerivative(ValueId v) const {
    const Node &n = node(v);
    if (n.op != Op::Sub || node(n.inputs[0]).op != Op::Const || node(n.inputs[0]).attrs.value != 1)
      return kNoValue;
    const Node &sq = node(n.inputs[1]);
    if (sq.op != Op::Mul || sq.inputs[0] != sq.inputs[1] || node(sq.inputs[0]).op != Op::Tanh)
      return kNoValue;
    return node(sq.inputs[0]).inputs[0];
  }

  /// The adjoint of cross-entropy's scores z: onehot(y)·c - sum(onehot(y)·c)·softmax(z),
  /// i.e. c · (onehot(y) - softmax(z)). Returns the text, or "" if `v` is not that.
  std::string crossEntropyAdjoint(ValueId v) {
    const Node &n = node(v);
    if (n.op != Op::Sub || node(n.inputs[0]).op != Op::Scatter || node(n.inputs[1]).op != Op::Mul)
      return {};
    ValueId onehot = n.inputs[0];
    const Node &m = node(n.inputs[1]);
    for (int i = 0; i < 2; ++i) {
      ValueId sum = m.inputs[static_cast<size_t>(i)], soft = m.inputs[static_cast<size_t>(1 - i)];
      while (node(sum).op == Op::BroadcastTo)
        sum = node(sum).inputs[0];
      bool sums = (node(sum).op == Op::SumTo || node(sum).op == Op::Sum) &&
                  node(sum).inputs[0] == onehot;
      if (!sums || node(soft).op != Op::Exp || node(node(soft).inputs[0]).op != Op::LogSoftmax)
        continue;
      std::string z = print(node(node(soft).inputs[0]).inputs[0]);
      std::string y = print(node(onehot).inputs[1]);
      std::string c = print(node(onehot).inputs[0], kProduct + 1);
      if (c == "(-1 / N)")
        return "(softmax(" + z + ") - onehot(" + y + ")) / N";
      return c + " · (onehot(" + y + ") - softmax(" + z + "))";
    }
    return {};
  }

  void factors(ValueId v, std::vector<ValueId> &out) const {
    const Node &n = node(v);
    if (n.op == Op::Mul && n.label.empty() && sigmoidDerivative(v) == kNoValue) {
      factors(n.inputs[0], out);
      factors(n.inputs[1], out);
      return;
    }
    out.push_back(v);
  }

  std::pair<std::string, int> format(ValueId v) {
    const Node &n = node(v);
    if (!n.label.empty())
      return {n.label, kAtom};
    if (ValueId z = sigmoidDerivative(v); z != kNoValue)
      return {"σ'(" + print(z) + ")", kAtom};
    if (ValueId z = tanhDerivative(v); z != kNoValue)
      return {"tanh'(" + print(z) + ")", kAtom};
    if (std::string ce = crossEntropyAdjoint(v); !ce.empty())
      return {ce, kProduct};
    // a - -(b) is a + b, a + -(b) is a - b, -(-(a)) is a.
    if ((n.op == Op::Sub || n.op == Op::Add) && node(n.inputs[1]).op == Op::Neg)
      return {print(n.inputs[0], kSum) + (n.op == Op::Sub ? " + " : " - ") +
                  print(node(n.inputs[1]).inputs[0], kSum + 1),
              kSum};
    if (n.op == Op::Neg && node(n.inputs[0]).op == Op::Neg)
      return format(node(n.inputs[0]).inputs[0]);
    if (n.op == Op::Exp && node(n.inputs[0]).op == Op::LogSoftmax)
      return {"softmax(" + print(node(n.inputs[0]).inputs[0]) + ")", kAtom};
    auto binary = [&](const char *op, int precedence, bool rightTight) {
      return std::pair{print(n.inputs[0], precedence) + op +
                           print(n.inputs[1], precedence + (rightTight ? 1 : 0)),
                       precedence};
    };
    auto call = [&](const std::string &f) {
      return std::pair{f + "(" + print(n.inputs[0]) + ")", int(kAtom)};
    };
    switch (n.op) {
    case Op::Input:
    case Op::Param:
    case Op::State:
    case Op::Buffer:
    case Op::HParam:
      return {n.attrs.name, kAtom};
    case Op::Const:
      return {fmt::format("{}", n.attrs.value), kAtom};
    case Op::BatchSize:
      return {"N", kAtom};
    case Op::Mul: {
      std::vector<ValueId> parts;
      factors(v, parts);
      // Constants first (2 · r), then the chain-rule factors outwards.
      std::vector<ValueId> ordered;
      for (ValueId p : parts)
        if (node(p).op == Op::Const)
          ordered.push_back(p);
      for (auto it = parts.rbegin(); it != parts.rend(); ++it)
        if (node(*it).op != Op::Const)
          ordered.push_back(*it);
      std::string text;
      for (ValueId p : ordered)
        text += (text.empty() ? "" : " · ") + print(p, kProduct + 1);
      return {text, kProduct};
    }
    case Op::Add: return binary(" + ", kSum, false);
    case Op::Sub: return binary(" - ", kSum, true);
    case Op::Div: return binary(" / ", kProduct, true);
    case Op::Neg: return {"-" + print(n.inputs[0], kUnary), kUnary};
    case Op::PowI: return {print(n.inputs[0], kAtom) + "^" + std::to_string(n.attrs.k), kAtom};
    case Op::Pow: return {print(n.inputs[0], kAtom) + "^" + fmt::format("{}", n.attrs.value), kAtom};
    case Op::Sigmoid: return call("σ");
    case Op::Step: // relu's mask, taken from relu's result: relu'(x)
      if (node(n.inputs[0]).op == Op::Relu)
        return {"relu'(" + print(node(n.inputs[0]).inputs[0]) + ")", kAtom};
      return call("relu'");
    case Op::DropoutTrain: return call("dropout"); // the step's mask, on values and adjoints
    case Op::Sum:
    case Op::SumTo: return call("sum");
    case Op::BroadcastTo:
    case Op::Reshape: return format(n.inputs[0]);
    case Op::MatMul:
      return {print(n.inputs[0], kProduct + 1) + (n.attrs.transA ? "^T" : "") + " @ " +
                  print(n.inputs[1], kProduct + 1) + (n.attrs.transB ? "^T" : ""),
              kProduct};
    case Op::Pick: return {"pick(" + print(n.inputs[0]) + ", " + print(n.inputs[1]) + ")", kAtom};
    case Op::Scatter: return {"onehot(" + print(n.inputs[1]) + ") · " + print(n.inputs[0], kProduct + 1), kProduct};
    default:
      return call(opName(n.op));
    }
  }

  const Graph &g_;
};

} // namespace

bool explainGradient(const Model &model, const std::string &name, std::ostream &out,
                     std::string &error) {
  ValueId param = kNoValue;
  for (const auto &p : model.params)
    if (p.name == name)
      param = p.value;
  if (param == kNoValue) {
    std::string names;
    for (const auto &p : model.params)
      names += (names.empty() ? "" : ", ") + p.name;
    error = fmt::format("'{}' is not a parameter of this model (its parameters: {})", name, names);
    return false;
  }
  // The training step's derivative: dropout drops, batch norm uses the batch.
  Graph g = specialize(model.graph, Mode::Train, ModeOptions{1});
  g.effects.clear();
  for (size_t i = 0; i < g.size(); ++i)
    if (g.node(static_cast<ValueId>(i)).op == Op::Param && g.node(static_cast<ValueId>(i)).attrs.name == name)
      param = static_cast<ValueId>(i);
  ValueId missing = kNoValue;
  std::vector<ValueId> grads = differentiate(g, g.output("loss"), {param}, &missing);
  if (missing != kNoValue) {
    error = fmt::format("cannot differentiate '{}': the op has no gradient rule",
                        opName(g.node(missing).op));
    return false;
  }
  ValueId grad = grads[0];
  g.outputs = {{"grad", grad}};
  g = simplify(g);
  bool plain = name.find('.') == std::string::npos;
  out << "dC/d" << (plain ? name : "(" + name + ")") << " = "
      << FormulaPrinter(g).print(g.output("grad")) << '\n';
  return true;
}

} // namespace netc
