// Optimizers.cpp - SGD (momentum, Nesterov, weight decay), RMSprop, Adam and
// AdamW as graph ops, following PyTorch 1.13's update rules.
#include "compiler/transforms/Optimizers.h"

#include <cassert>

namespace netc {

namespace {

class Updater {
public:
  Updater(Graph &g, const OptimizerSpec &spec) : g_(g), spec_(spec) {
    lr_ = hparam("lr", kLearningRate);
    if (spec_.kind == "adam" || spec_.kind == "adamw") {
      bc1_ = hparam("bias_correction1", kBiasCorrection1);
      bc2_ = hparam("bias_correction2", kBiasCorrection2);
    }
  }

  void update(const ParamSpec &p, ValueId grad, std::vector<StateSpec> &states) {
    if (spec_.kind == "sgd")
      sgd(p, grad, states);
    else if (spec_.kind == "rmsprop")
      rmsprop(p, grad, states);
    else
      adam(p, grad, states);
  }

private:
  // One node per statement: argument evaluation order is unspecified in
  // C++, and the graph must not depend on the host compiler.
  ValueId c(double v) { return g_.constant(v); }
  ValueId mul(ValueId a, ValueId b) { return g_.binary(Op::Mul, a, b); }
  ValueId add(ValueId a, ValueId b) { return g_.binary(Op::Add, a, b); }
  ValueId sub(ValueId a, ValueId b) { return g_.binary(Op::Sub, a, b); }
  ValueId div(ValueId a, ValueId b) { return g_.binary(Op::Div, a, b); }
  ValueId scaled(double k, ValueId v) {
    ValueId kc = c(k);
    return mul(kc, v);
  }
  /// a * x + b * y for constants a, b.
  ValueId blend(double a, ValueId x, double b, ValueId y) {
    ValueId left = scaled(a, x);
    ValueId right = scaled(b, y);
    return add(left, right);
  }

  ValueId square(ValueId v) {
    Attrs two;
    two.k = 2;
    return g_.add(Op::PowI, {v}, two);
  }

  ValueId hparam(const char *name, int64_t index) {
    Attrs a;
    a.name = name;
    a.k = index;
    return g_.add(Op::HParam, {}, a);
  }

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

  /// g + weight_decay * p (L2 regularisation, as PyTorch's optimizers do).
  ValueId decayed(const ParamSpec &p, ValueId grad) {
    if (spec_.weightDecay == 0)
      return grad;
    ValueId decay = scaled(spec_.weightDecay, p.value);
    return add(grad, decay);
  }

  // buf = mu*buf + g; step = nesterov ? g + mu*buf : buf; p -= lr * step.
  // A zero-initialised buffer gives PyTorch's first step (buf = g) exactly.
  void sgd(const ParamSpec &p, ValueId grad, std::vector<StateSpec> &states) {
    ValueId g = decayed(p, grad);
    ValueId step = g;
    if (spec_.momentum != 0) {
      ValueId buf = state(p, "momentum_buffer", states);
      ValueId kept = scaled(spec_.momentum, buf);
      ValueId next = add(kept, g);
      assign(buf, next);
      step = next;
      if (spec_.nesterov) {
        ValueId ahead = scaled(spec_.momentum, next);
        step = add(g, ahead);
      }
    }
    ValueId delta = mul(lr_, step);
    assign(p.value, sub(p.value, delta));
  }

  // v = alpha*v + (1-alpha)*g^2; p -= lr * g / (sqrt(v) + eps).
  void rmsprop(const ParamSpec &p, ValueId grad, std::vector<StateSpec> &states) {
    ValueId g = decayed(p, grad);
    ValueId avg = state(p, "square_avg", states);
    ValueId g2 = square(g);
    ValueId v = blend(spec_.alpha, avg, 1 - spec_.alpha, g2);
    assign(avg, v);
    ValueId root = g_.unary(Op::Sqrt, v);
    ValueId denom = add(root, c(spec_.eps));
    ValueId step = div(g, denom);
    ValueId delta = mul(lr_, step);
    assign(p.value, sub(p.value, delta));
  }

  // m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
  // p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), bc = 1 - b^t given by
  // the runtime. AdamW first shrinks p by (1 - lr * weight_decay); Adam adds
  // weight_decay * p to the gradient instead.
  void adam(const ParamSpec &p, ValueId grad, std::vector<StateSpec> &states) {
    bool decoupled = spec_.kind == "adamw";
    ValueId g = decoupled ? grad : decayed(p, grad);
    ValueId param = p.value;
    if (decoupled && spec_.weightDecay != 0) {
      ValueId shrink = scaled(spec_.weightDecay, lr_);
      ValueId factor = sub(c(1.0), shrink);
      param = mul(factor, p.value);
    }
    ValueId m = state(p, "exp_avg", states);
    ValueId v = state(p, "exp_avg_sq", states);
    ValueId m1 = blend(spec_.beta1, m, 1 - spec_.beta1, g);
    assign(m, m1);
    ValueId g2 = square(g);
    ValueId v1 = blend(spec_.beta2, v, 1 - spec_.beta2, g2);
    assign(v, v1);
    ValueId root = g_.unary(Op::Sqrt, v1);
    ValueId bc2root = g_.unary(Op::Sqrt, bc2_);
    ValueId scaledRoot = div(root, bc2root);
    ValueId denom = add(scaledRoot, c(spec_.eps));
    ValueId stepSize = div(lr_, bc1_);
    ValueId ratio = div(m1, denom);
    ValueId delta = mul(stepSize, ratio);
    assign(p.value, sub(param, delta));
  }

  Graph &g_;
  const OptimizerSpec &spec_;
  ValueId lr_ = kNoValue, bc1_ = kNoValue, bc2_ = kNoValue;
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
