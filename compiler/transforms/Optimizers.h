// Optimizers.h - optimizer updates as graph ops.
#pragma once

#include "compiler/graph/Graph.h"
#include "compiler/sema/Model.h"

#include <vector>

namespace netc {

/// A persistent optimizer tensor, zero at the start of training.
struct StateSpec {
  std::string name; ///< "optim.<param>.<slot>", e.g. "optim.a.square_avg"
  Shape shape;
  ValueId value = kNoValue;
};

/// Run-time hyperparameters (the `hparams` of the entry points): first the
/// learning rate (from --lr), then the step-dependent ones below.
constexpr int64_t kLearningRate = 0;

/// A hyperparameter the runtime computes for each step t (1-based) as
/// 1 - base^(t + offset), in double precision as PyTorch does: Adam's bias
/// corrections 1 - beta^t lose 1e-4 of their value to cancellation in float
/// on the first steps.
struct StepHParam {
  std::string name;
  double base = 0;
  int offset = 0;
};

/// The step-dependent hyperparameters of `spec`, in hparam order (index 1
/// onwards): Adam's bias corrections; SGD's "after the first step" flag,
/// 1 - 0^(t-1), for dampening (PyTorch's first step does not dampen).
std::vector<StepHParam> stepHParams(const OptimizerSpec &spec);

/// Appends the update of every parameter of `model` given its gradient in
/// `grads` (same order as model.params): new State leaves for optimizer
/// state, the arithmetic of `model.optimizer`, and Assign effects. The
/// learning rate is the HParam kLearningRate, so `--lr` needs no recompile.
/// Updates follow PyTorch 1.13's SGD (momentum, dampening, Nesterov,
/// weight decay), RMSprop (momentum, centered, weight decay), Adam (with
/// amsgrad, weight decay) and AdamW.
std::vector<StateSpec> addOptimizerUpdates(Graph &graph, const Model &model,
                                           const std::vector<ValueId> &grads);

} // namespace netc
