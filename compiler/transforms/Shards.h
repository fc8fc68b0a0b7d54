// Shards.h - the entry points of data-parallel training (netc --distributed).
//
// A distributed program splits every batch into a fixed number of shards
// (the program's --shards), whatever the number of processes. Each shard's
// gradient is computed on its own (shard_gradients), the shards' gradients
// are added in shard order (by the runtime, across processes), and one
// update applies the sum (apply_update). Because the shards and the order of
// the sum do not depend on how many processes share them, the weights are
// bitwise the same with 1, 2 or 3 processes.
//
// That is right only for a loss that is a sum over the batch's examples of
// terms that each depend on one example (times factors that depend on the
// batch size alone: a mean): then the batch's gradient is the sum of its
// shards' gradients, if each shard divides by the whole batch's size. The
// check below proves that from the training graph, or names the operation
// that mixes examples (batch norm's batch statistics, a term without data).
#pragma once

#include "compiler/graph/Graph.h"
#include "compiler/sema/Model.h"
#include "compiler/transforms/Fuse.h"
#include "compiler/transforms/Optimizers.h"

#include <optional>
#include <string>

namespace netc {

/// Why a training graph's loss is not a sum of per-example terms.
struct ShardProblem {
  ast::Loc loc;
  std::string message;
};

/// Classifies every node on the way to `loss` (uniform: no data; per
/// example: row i depends on example i only; a total: a sum over examples of
/// per-example values, scaled by uniform factors) and returns the first
/// node that is none of these, or a loss that is not a total.
std::optional<ShardProblem> checkShardable(const Graph &train, ValueId loss);

/// The raw-gradients graph of one shard: `gradients` with the batch size
/// (the divisor of a mean) read from hparam `totalSlot`, the number of
/// examples of the whole batch, instead of the shard's.
Graph shardGradientsGraph(const Graph &gradients, int64_t totalSlot);

/// The optimizer's update alone: `differentiated` (the training graph after
/// autodiff) without its outputs and effects, each parameter's gradient an
/// input leaf (slot i of the entry's `inputs`: the summed gradient of
/// parameter i), then the optimizer's updates. Its states are the training
/// step's, in the same order.
Graph applyUpdateGraph(const Graph &differentiated, const Model &model);

/// For each parameter i, the kernel of `schedule` after which its gradient
/// (output "grad <i>") is complete: where the generated shard_gradients
/// hands it to the runtime, which may start communicating it while the
/// kernels after it run. -1: before the first kernel (a constant gradient).
std::vector<int> gradientReadyKernels(const Graph &graph, const Schedule &schedule,
                                      size_t paramCount);

} // namespace netc
