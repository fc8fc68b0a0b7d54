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

/// Index of the learning rate among the run-time hyperparameters.
constexpr int64_t kLearningRate = 0;

/// Appends the update of every parameter of `model` given its gradient in
/// `grads` (same order as model.params): new State leaves for optimizer
/// state, the arithmetic of `model.optimizer`, and Assign effects. The
/// learning rate is the HParam kLearningRate, so `--lr` needs no recompile.
/// Updates follow PyTorch 1.13's SGD (momentum) and RMSprop.
std::vector<StateSpec> addOptimizerUpdates(Graph &graph, const Model &model,
                                           const std::vector<ValueId> &grads);

} // namespace netc
