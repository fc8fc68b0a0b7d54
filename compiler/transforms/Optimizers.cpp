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
    auto steps = stepHParams(spec);
    for (size_t i = 0; i < steps.size(); ++i)
      stepValues_.push_back(hparam(steps[i].name.c_str(), static_cast<int64_t>(i + 1)));
  }

  void update(const ParamSpec &p, ValueId grad, std::vector<StateSpec> &states) {
    g_.setOrigin(Op::Param, g_.node(p.value).loc); // the update's nodes point to p
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

  /// A state's next value, stored with what falls below the smallest
  /// normal float flushed to 0 (this step's update uses it unflushed). A
  /// moment whose gradient stays 0 (a dead ReLU unit's weights) decays
  /// geometrically into denormals, which every multiply then takes a slow
  /// microcode path for: after 4 epochs 10% of the MNIST MLP's first moments
  /// were denormal and its epochs 30% slower (Intel Xeon; 10 epochs 18%
  /// faster now, the weights the same bytes). PyTorch keeps them; the
  /// weights can differ only through a moment below 2^-126: Adam's m moves a
  /// weight by less than lr·10·2^-126 / eps (1e-32 with the defaults), lost
  /// in any weight above ~1e-25, and sqrt(v̂) stays below eps's last bit.
  void keep(ValueId state, ValueId value) {
    ValueId flushed = g_.unary(Op::FlushDenormal, value);
    assign(state, flushed);
  }

  /// g + weight_decay * p (L2 regularisation, as PyTorch's optimizers do).
  ValueId decayed(const ParamSpec &p, ValueId grad) {
    if (spec_.weightDecay == 0)
      return grad;
    ValueId decay = scaled(spec_.weightDecay, p.value);
    return add(grad, decay);
  }

  // buf = mu*buf + (1 - dampening)*g; step = nesterov ? g + mu*buf : buf;
  // p -= lr * step. PyTorch's first step sets buf = g: a zero buffer gives
  // that, and dampening is switched off on the first step by the "after the
  // first step" hyperparameter (0 on step 1, then 1).
  void sgd(const ParamSpec &p, ValueId grad, std::vector<StateSpec> &states) {
    ValueId g = decayed(p, grad);
    ValueId step = g;
    if (spec_.momentum != 0) {
      ValueId buf = state(p, "momentum_buffer", states);
      ValueId kept = scaled(spec_.momentum, buf);
      ValueId incoming = g;
      if (spec_.dampening != 0) {
        ValueId damp = scaled(spec_.dampening, stepValues_[0]);
        ValueId factor = sub(c(1.0), damp);
        incoming = mul(factor, g);
      }
      ValueId next = add(kept, incoming);
      keep(buf, next);
      step = next;
      if (spec_.nesterov) {
        ValueId ahead = scaled(spec_.momentum, next);
        step = add(g, ahead);
      }
    }
    ValueId delta = mul(lr_, step);
    assign(p.value, sub(p.value, delta));
  }

  // v = alpha*v + (1-alpha)*g^2; centered: ga = alpha*ga + (1-alpha)*g and
  // v - ga^2 in place of v; step = g / (sqrt(v) + eps); momentum:
  // buf = mu*buf + step, step = buf; p -= lr * step.
  void rmsprop(const ParamSpec &p, ValueId grad, std::vector<StateSpec> &states) {
    ValueId g = decayed(p, grad);
    ValueId avg = state(p, "square_avg", states);
    ValueId g2 = square(g);
    ValueId v = blend(spec_.alpha, avg, 1 - spec_.alpha, g2);
    keep(avg, v);
    ValueId spread = v;
    if (spec_.centered) {
      ValueId gavg = state(p, "grad_avg", states);
      ValueId ga = blend(spec_.alpha, gavg, 1 - spec_.alpha, g);
      keep(gavg, ga);
      ValueId ga2 = square(ga);
      spread = sub(v, ga2);
    }
    ValueId root = g_.unary(Op::Sqrt, spread);
    ValueId denom = add(root, c(spec_.eps));
    ValueId step = div(g, denom);
    if (spec_.momentum != 0) {
      ValueId buf = state(p, "momentum_buffer", states);
      ValueId kept = scaled(spec_.momentum, buf);
      step = add(kept, step);
      keep(buf, step);
    }
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
    keep(m, m1);
    ValueId g2 = square(g);
    ValueId v1 = blend(spec_.beta2, v, 1 - spec_.beta2, g2);
    keep(v, v1);
    ValueId second = v1;
    if (spec_.amsgrad) { // the largest second moment so far
      ValueId vmax = state(p, "max_exp_avg_sq", states);
      second = g_.binary(Op::Max, vmax, v1);
      keep(vmax, second);
    }
    ValueId root = g_.unary(Op::Sqrt, second);
    ValueId bc2root = g_.unary(Op::Sqrt, bc2_());
    ValueId scaledRoot = div(root, bc2root);
    ValueId denom = add(scaledRoot, c(spec_.eps));
    ValueId stepSize = div(lr_, bc1_());
    ValueId ratio = div(m1, denom);
    ValueId delta = mul(stepSize, ratio);
    assign(p.value, sub(param, delta));
  }

  ValueId bc1_() const { return stepValues_[0]; }
  ValueId bc2_() const { return stepValues_[1]; }

  Graph &g_;
  const OptimizerSpec &spec_;
  ValueId lr_ = kNoValue;
  std::vector<ValueId> stepValues_; ///< HParams 1.., as stepHParams lists them
};

} // namespace

std::vector<StepHParam> stepHParams(const OptimizerSpec &spec) {
  if (spec.kind == "adam" || spec.kind == "adamw")
    return {{"bias_correction1", spec.beta1, 0}, {"bias_correction2", spec.beta2, 0}};
  if (spec.kind == "sgd" && spec.momentum != 0 && spec.dampening != 0)
    return {{"after_first_step", 0.0, -1}};
  return {};
}

std::vector<StateSpec> addOptimizerUpdates(Graph &graph, const Model &model,
                                           const std::vector<ValueId> &grads) {
  assert(grads.size() == model.params.size() && "one gradient per parameter");
  std::vector<StateSpec> states;
  Updater u(graph, model.optimizer);
  for (size_t i = 0; i < grads.size(); ++i)
    u.update(model.params[i], grads[i], states);
  graph.clearOrigin();
  return states;
}

} // namespace netc
