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

/// Run-time hyperparameters (the `hparams` of the entry points). The
/// learning rate comes from --lr; Adam's bias corrections 1 - beta^t are
/// computed by the runtime in double precision for each step t (1-based),
/// as PyTorch does, so no float cancellation spoils the first steps.
constexpr int64_t kLearningRate = 0;
constexpr int64_t kBiasCorrection1 = 1;
constexpr int64_t kBiasCorrection2 = 2;

/// Appends the update of every parameter of `model` given its gradient in
/// `grads` (same order as model.params): new State leaves for optimizer
/// state, the arithmetic of `model.optimizer`, and Assign effects. The
/// learning rate is the HParam kLearningRate, so `--lr` needs no recompile.
/// Updates follow PyTorch 1.13's SGD, RMSprop, Adam and AdamW.
std::vector<StateSpec> addOptimizerUpdates(Graph &graph, const Model &model,
                                           const std::vector<ValueId> &grads);

} // namespace netc
