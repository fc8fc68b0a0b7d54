// Optimizers.cpp - SGD (with momentum) and RMSprop as graph ops.
#include "compiler/transforms/Optimizers.h"

#include <cassert>

namespace netc {

namespace {

class Updater {
public:
  Updater(Graph &g, const OptimizerSpec &spec) : g_(g), spec_(spec) {
    Attrs lr;
    lr.name = "lr";
    lr.k = kLearningRate;
    lr_ = g_.add(Op::HParam, {}, lr);
  }

  void update(const ParamSpec &p, ValueId grad, std::vector<StateSpec> &states) {
    if (spec_.kind == "sgd")
      sgd(p, grad, states);
    else
      rmsprop(p, grad, states);
  }

private:
  ValueId c(double v) { return g_.constant(v); }
  ValueId mul(ValueId a, ValueId b) { return g_.binary(Op::Mul, a, b); }
  ValueId add(ValueId a, ValueId b) { return g_.binary(Op::Add, a, b); }
  ValueId sub(ValueId a, ValueId b) { return g_.binary(Op::Sub, a, b); }

  ValueId state(const ParamSpec &p, const char *slot, std::vector<StateSpec> &states) {
    Attrs a;
    a.name = "optim." + p.name + "." + slot;
    a.shape = p.shape;
    a.k = static_cast<int64_t>(states.size());
    ValueId v = g_.add(Op::State, {}, a);
    states.push_back({a.name, p.shape, v});
    return v;
  }

  void assign(ValueId target, ValueId value) {
    g_.effects.push_back(g_.add(Op::Assign, {target, value}));
  }

  // p -= lr * g, or with momentum mu: buf = mu*buf + g; p -= lr * buf.
  // A zero-initialised buffer gives PyTorch's first step (buf = g) exactly.
  void sgd(const ParamSpec &p, ValueId grad, std::vector<StateSpec> &states) {
    ValueId step = grad;
    if (spec_.momentum != 0) {
      ValueId buf = state(p, "momentum_buffer", states);
      step = add(mul(c(spec_.momentum), buf), grad);
      assign(buf, step);
    }
    assign(p.value, sub(p.value, mul(lr_, step)));
  }

  // v = alpha*v + (1-alpha)*g^2; p -= lr * g / (sqrt(v) + eps).
  void rmsprop(const ParamSpec &p, ValueId grad, std::vector<StateSpec> &states) {
    ValueId avg = state(p, "square_avg", states);
    Attrs two;
    two.k = 2;
    ValueId g2 = g_.add(Op::PowI, {grad}, two);
    // One node per statement: argument evaluation order is unspecified in
    // C++, and the graph must not depend on the host compiler.
    ValueId kept = mul(c(spec_.alpha), avg);
    ValueId added = mul(c(1 - spec_.alpha), g2);
    ValueId v = add(kept, added);
    assign(avg, v);
    ValueId root = g_.unary(Op::Sqrt, v);
    ValueId denom = add(root, c(spec_.eps));
    ValueId step = g_.binary(Op::Div, grad, denom);
    assign(p.value, sub(p.value, mul(lr_, step)));
  }

  Graph &g_;
  const OptimizerSpec &spec_;
  ValueId lr_;
};

} // namespace

std::vector<StateSpec> addOptimizerUpdates(Graph &graph, const Model &model,
                                           const std::vector<ValueId> &grads) {
  assert(grads.size() == model.params.size() && "one gradient per parameter");
  std::vector<StateSpec> states;
  Updater u(graph, model.optimizer);
  for (size_t i = 0; i < grads.size(); ++i)
    u.update(model.params[i], grads[i], states);
  return states;
}

} // namespace netc
