// Shards.cpp - the shardability check and the two entry points of
// data-parallel training (Shards.h).
#include "compiler/transforms/Shards.h"

#include <fmt/format.h>

#include <cassert>
#include <vector>

namespace netc {

namespace {

/// How a value depends on the batch's examples.
enum class Dep : uint8_t {
  Uniform,    ///< on no example (parameters, constants, the batch size)
  PerExample, ///< row i (the batch axis leads) on example i alone
  Total,      ///< a sum over examples of per-example values, times uniform factors
  Mixed,      ///< anything else
};

struct Verdict {
  Dep dep;
  const char *why = nullptr; ///< for Mixed: what mixes
};

bool batchLeads(const Shape &s) { return s.rank() > 0 && s.dims[0] == kBatch; }

/// An op of one example's row (elementwise, softmax along the last axis, a
/// convolution of NCHW, ...): per example if some operand is, uniform if
/// all are; `rowsOnly`: the op works along the last axis, which must not be
/// the batch's.
Verdict rowwise(const Node &n, const std::vector<Dep> &deps, bool rowsOnly = false) {
  bool perExample = false, total = false;
  for (ValueId in : n.inputs) {
    Dep d = deps[static_cast<size_t>(in)];
    if (d == Dep::Mixed)
      return {Dep::Mixed};
    perExample = perExample || d == Dep::PerExample;
    total = total || d == Dep::Total;
  }
  if (total && perExample)
    return {Dep::Mixed, "meets a statistic of the whole batch with single examples (as batch "
                        "norm does in training)"};
  if (total)
    return {Dep::Mixed, "takes a sum over the batch's examples through more than a scaling"};
  if (!perExample)
    return {Dep::Uniform};
  if (!batchLeads(n.shape) || (rowsOnly && n.shape.rank() < 2))
    return {Dep::Mixed, "works along the batch's axis"};
  return {Dep::PerExample};
}

Verdict classify(const Node &n, const std::vector<Dep> &deps) {
  auto dep = [&](size_t i) { return deps[static_cast<size_t>(n.inputs[i])]; };
  auto all = [&](Dep d) {
    for (size_t i = 0; i < n.inputs.size(); ++i)
      if (dep(i) != d)
        return false;
    return true;
  };
  const char *uniformTerm = "adds a term that does not depend on the data to a sum over "
                            "examples (each shard would add it again)";
  switch (n.op) {
  case Op::Input:
    if (!n.shape.hasBatch())
      return {Dep::Uniform};
    return batchLeads(n.shape) ? Verdict{Dep::PerExample}
                               : Verdict{Dep::Mixed, "has its batch axis elsewhere than first"};
  case Op::Param:
  case Op::State:
  case Op::Buffer:
  case Op::HParam:
  case Op::Const:
  case Op::BatchSize:
  case Op::Table:
    return {Dep::Uniform};
  case Op::Sum:
  case Op::SumTo:
    if (dep(0) == Dep::PerExample)
      return batchLeads(n.shape) ? Verdict{Dep::PerExample} : Verdict{Dep::Total};
    if (dep(0) == Dep::Total)
      return {Dep::Total};
    return {dep(0)};
  case Op::Neg:
    if (dep(0) == Dep::Total)
      return {Dep::Total};
    return rowwise(n, deps);
  case Op::Add:
  case Op::Sub:
    if (all(Dep::Total))
      return {Dep::Total};
    if (dep(0) == Dep::Total || dep(1) == Dep::Total) {
      if (dep(0) == Dep::Uniform || dep(1) == Dep::Uniform)
        return {Dep::Mixed, uniformTerm};
    }
    return rowwise(n, deps);
  case Op::Mul:
    if ((dep(0) == Dep::Total && dep(1) == Dep::Uniform) ||
        (dep(0) == Dep::Uniform && dep(1) == Dep::Total))
      return {Dep::Total};
    return rowwise(n, deps);
  case Op::Div:
    if (dep(0) == Dep::Total && dep(1) == Dep::Uniform)
      return {Dep::Total};
    return rowwise(n, deps);
  case Op::Reshape:
    if (dep(0) == Dep::Total)
      return {Dep::Total};
    return rowwise(n, deps);
  case Op::MatMul:
    if (all(Dep::Uniform))
      return {Dep::Uniform};
    if (dep(0) == Dep::PerExample && !n.attrs.transA && dep(1) == Dep::Uniform)
      return {Dep::PerExample};
    return {Dep::Mixed, "sums a product over the batch's examples"};
  case Op::Softmax:
  case Op::LogSoftmax:
  case Op::Slice:
  case Op::Frames:
  case Op::FramesGrad:
  case Op::PowerSpectrum:
  case Op::Stack:
    return rowwise(n, deps, /*rowsOnly=*/n.op != Op::Stack);
  case Op::Dropout:
  case Op::BatchNorm:
    assert(false && "mode ops are specialised before the check");
    return {Dep::Mixed};
  default: // the remaining elementwise ops, broadcasts, windows, layouts
    return rowwise(n, deps);
  }
}

} // namespace

std::optional<ShardProblem> checkShardable(const Graph &train, ValueId loss) {
  // Only what the loss depends on matters (effects update buffers).
  std::vector<bool> needed(train.size(), false);
  needed[static_cast<size_t>(loss)] = true;
  for (size_t i = train.size(); i-- > 0;)
    if (needed[i])
      for (ValueId in : train.node(static_cast<ValueId>(i)).inputs)
        needed[static_cast<size_t>(in)] = true;
  std::vector<Dep> deps(train.size(), Dep::Uniform);
  for (size_t i = 0; i < train.size(); ++i) {
    if (!needed[i])
      continue;
    const Node &n = train.node(static_cast<ValueId>(i));
    Verdict v = classify(n, deps);
    deps[i] = v.dep;
    if (v.dep == Dep::Mixed && v.why)
      return ShardProblem{n.loc, fmt::format("--distributed: here '{}'{} {}, so a shard's "
                                             "gradient would depend on the other shards (the "
                                             "loss must be a sum or mean of per-example terms)",
                                             opName(n.op),
                                             n.label.empty() ? "" : " (" + n.label + ")", v.why)};
    assert(v.dep != Dep::Mixed && "the first mixing node says why");
  }
  switch (deps[static_cast<size_t>(loss)]) {
  case Dep::Total:
    return std::nullopt;
  case Dep::Uniform:
    return ShardProblem{train.node(loss).loc,
                        "--distributed: the loss does not depend on the data, so every shard "
                        "would count it again"};
  default:
    return ShardProblem{train.node(loss).loc,
                        "--distributed: the loss is not a sum or mean over the batch's examples"};
  }
}

Graph shardGradientsGraph(const Graph &gradients, int64_t totalSlot) {
  return rebuild(gradients, [&](Graph &out, ValueId id, const std::vector<ValueId> &) {
    const Node &n = gradients.node(id);
    if (n.op != Op::BatchSize)
      return kNoValue;
    Attrs a;
    a.name = "batch_total";
    a.k = totalSlot;
    return out.add(Op::HParam, {}, a, n.loc);
  });
}

std::vector<int> gradientReadyKernels(const Graph &graph, const Schedule &schedule,
                                      size_t paramCount) {
  std::vector<int> ready;
  for (size_t i = 0; i < paramCount; ++i) {
    ValueId g = graph.output("grad " + std::to_string(i));
    assert(g != kNoValue && "a gradients graph has an output per parameter");
    ready.push_back(schedule.kernelOf[static_cast<size_t>(g)]);
  }
  return ready;
}

Graph applyUpdateGraph(const Graph &differentiated, const Model &model) {
  Graph g = differentiated;
  g.outputs.clear();
  g.effects.clear();
  std::vector<ValueId> grads;
  for (size_t i = 0; i < model.params.size(); ++i) {
    Attrs a;
    a.name = "grad(" + model.params[i].name + ")";
    a.k = static_cast<int64_t>(i);
    a.shape = model.params[i].shape;
    grads.push_back(g.add(Op::Input, {}, a));
  }
  addOptimizerUpdates(g, model, grads);
  return g;
}

} // namespace netc
