// Pipeline.cpp - runs the middle-end stages in order, dumping after any.
#include "compiler/transforms/Pipeline.h"
#include "compiler/graph/Printer.h"
#include "compiler/graph/Verifier.h"
#include "compiler/transforms/Autodiff.h"
#include "compiler/transforms/Decisions.h"
#include "compiler/transforms/Modes.h"
#include "compiler/transforms/Recompute.h"
#include "compiler/transforms/Shards.h"
#include "compiler/transforms/Simplify.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

namespace netc {

namespace {

// A malformed graph is a compiler bug: stop before it becomes bad code.
void verifyOrDie(const Graph &g, std::string_view stage) {
  std::string problem = verifyGraph(g);
  if (problem.empty())
    return;
  std::cerr << fmt::format("netc: internal error: invalid graph after {}: {}\n", stage, problem);
  std::abort();
}

EntryPoint finish(std::string name, const Graph &graph, const PersistentLayout &persistent,
                  bool epilogues = true, int elementBytes = 4) {
  EntryPoint e{std::move(name), simplify(graph), {}, {}};
  verifyOrDie(e.graph, "simplify");
  e.schedule = epilogues ? fuseRecomputing(e.graph) : fuse(e.graph, false);
  verifyOrDie(e.graph, "recompute");
  e.plan = planMemory(e.graph, e.schedule, persistent, elementBytes);
  return e;
}

/// The probe of a training step (CompiledModel::probe).
EntryPoint probeEntry(const Graph &train, const PersistentLayout &persistent,
                      const SourceFile &file, std::vector<CompiledModel::ProbeValue> &values) {
  EntryPoint e{"probe", simplify(train), {}, {}};
  Graph &g = e.graph;
  size_t computed = g.size();
  for (size_t i = 0; i < computed; ++i) {
    const Node &n = g.node(static_cast<ValueId>(i));
    if (opKind(n.op) == OpKind::Leaf || n.op == Op::Assign)
      continue;
    g.outputs.push_back({"probe " + std::to_string(i), static_cast<ValueId>(i)});
  }
  e.schedule = fuse(g, /*epilogues=*/false);
  e.plan = planMemory(g, e.schedule, persistent);
  std::vector<std::pair<int, ValueId>> order;
  for (size_t k = 1; k < g.outputs.size(); ++k) { // after "loss"
    ValueId v = g.outputs[k].value;
    order.push_back({e.schedule.kernelOf[static_cast<size_t>(v)], v});
  }
  std::sort(order.begin(), order.end());
  for (auto [kernel, v] : order) {
    const Node &n = g.node(v);
    SourceFile::Position at = file.position(n.loc.begin);
    values.push_back({"probe " + std::to_string(v), opName(n.op), opName(n.origin), n.label,
                      n.phase, at.line, at.column});
  }
  return e;
}

} // namespace

std::vector<HParam> hparams(const Model &model) {
  std::vector<HParam> list = {{NETC_HPARAM_LR, "lr", model.optimizer.lr}};
  for (const StepHParam &h : stepHParams(model.optimizer))
    list.push_back({NETC_HPARAM_STEP, h.name, h.base, h.offset});
  if (hasRandomDropout(model.graph)) {
    list.push_back({NETC_HPARAM_KEY_LOW, "dropout_key_low"});
    list.push_back({NETC_HPARAM_KEY_HIGH, "dropout_key_high"});
  }
  return list;
}

int64_t hparamCount(const Model &model) { return static_cast<int64_t>(hparams(model).size()); }

std::optional<CompiledModel> runPipeline(Model model, Stage stopAfter, std::ostream &out,
                                         DiagnosticEngine &diags, const PipelineOptions &options) {
  verifyOrDie(model.graph, "sema");
  if (stopAfter == Stage::Graph) {
    printGraph(model.graph, "forward", out);
    return std::nullopt;
  }

  // Training and evaluation behaviour (dropout, batch norm), before
  // differentiation: only the training graph is differentiated.
  // Dropout's key is in the hparams where hparams() lists it (the end of
  // the list for a model without dropout, which never reads it).
  std::vector<HParam> slots = hparams(model);
  auto key = std::find_if(slots.begin(), slots.end(),
                          [](const HParam &h) { return h.kind == NETC_HPARAM_KEY_LOW; });
  ModeOptions modes{key - slots.begin()};
  Graph train = specialize(model.graph, Mode::Train, modes);
  Graph eval = specialize(model.graph, Mode::Eval, modes);
  verifyOrDie(train, "modes");
  verifyOrDie(eval, "modes");
  if (stopAfter == Stage::Modes) {
    printGraph(removeDeadNodes(train), "train", out);
    printGraph(removeDeadNodes(eval), "eval", out);
    return std::nullopt;
  }
  // The training step needs the loss only; predictions are forward's job.
  std::erase_if(train.outputs, [](const Graph::Output &o) { return o.name != "loss"; });
  std::vector<ValueId> params;
  for (const auto &p : model.params)
    params.push_back(p.value);
  ValueId missing = kNoValue;
  train.setPhase(Phase::Backward);
  std::vector<ValueId> grads = differentiate(train, train.output("loss"), params, &missing);
  if (missing != kNoValue) {
    const Node &n = train.node(missing);
    diags.error(n.loc, fmt::format("cannot differentiate '{}': the op has no gradient rule, "
                                   "and the loss depends on a parameter through it",
                                   opName(n.op)));
    return std::nullopt;
  }
  verifyOrDie(train, "autodiff");
  if (options.distributed && model.trains())
    if (auto problem = checkShardable(train, train.output("loss"))) {
      diags.error(problem->loc, problem->message);
      return std::nullopt;
    }
  Graph gradients = train;
  // Gradients only: running statistics are the training step's to update.
  gradients.effects.clear();
  for (size_t i = 0; i < grads.size(); ++i)
    gradients.outputs.push_back({"grad " + std::to_string(i), grads[i]});
  if (stopAfter == Stage::Grad) {
    // Gradient rules also produce adjoints of operands that need none (the
    // data, constants); show only what the outputs use.
    for (size_t i = 0; i < grads.size(); ++i)
      train.outputs.push_back({"grad(" + model.params[i].name + ")", grads[i]});
    printGraph(removeDeadNodes(train), "train_step", out);
    return std::nullopt;
  }

  train.setPhase(Phase::Update);
  Graph differentiated = train;
  std::vector<StateSpec> states = addOptimizerUpdates(train, model, grads);
  verifyOrDie(train, "optimizer");
  if (stopAfter == Stage::Step) {
    printGraph(removeDeadNodes(train), "train_step", out);
    return std::nullopt;
  }

  PersistentLayout persistent = layoutPersistent(model, states);
  EntryPoint shard, update;
  if (options.distributed) {
    shard = finish("shard_gradients", shardGradientsGraph(gradients, hparamCount(model)),
                   persistent);
    update = finish("apply_update", applyUpdateGraph(differentiated, model), persistent);
    verifyOrDie(shard.graph, "shards");
    verifyOrDie(update.graph, "shards");
  }
  if (stopAfter == Stage::Opt && options.distributed) {
    // Where each gradient is complete: the runtime may send it from there.
    std::vector<int> ready =
        gradientReadyKernels(shard.graph, shard.schedule, model.params.size());
    printSchedule(shard.graph, shard.schedule, "shard_gradients", out,
                  [&](int kernel, std::ostream &o) {
                    for (size_t i = 0; i < ready.size(); ++i)
                      if (ready[i] == kernel)
                        o << fmt::format("  ready grad({}): handed to the runtime, which may send it now\n",
                                         model.params[i].name);
                  });
    printSchedule(update.graph, update.schedule, "apply_update", out);
    return std::nullopt;
  }
  EntryPoint step = finish("train_step", train, persistent);
  if (stopAfter == Stage::Opt) {
    printSchedule(step.graph, step.schedule, "train_step", out);
    return std::nullopt;
  }
  if (stopAfter == Stage::Plan) {
    printPlan(step.graph, step.schedule, step.plan, persistent, "train_step", out);
    return std::nullopt;
  }
  EntryPoint forward = finish("forward", eval, persistent);
  // Predictions need the inputs only: without the loss, the targets are dead.
  Graph outputOnly = eval;
  std::erase_if(outputOnly.outputs, [](const Graph::Output &o) { return o.name != "prediction"; });
  EntryPoint predict = outputOnly.outputs.empty() ? EntryPoint{"predict", {}, {}, {}}
                                                  : finish("predict", outputOnly, persistent);
  // Unfused: the reference the fused step is checked against. Its twin in
  // double takes the branches it took.
  Graph live = removeDeadNodes(gradients);
  std::vector<ValueId> decisions = decisionNodes(live);
  EntryPoint twin =
      finish("gradients_f64",
             freezeDecisions(live, decisions, static_cast<int64_t>(model.data.fields.size())),
             persistent, /*epilogues=*/false, /*elementBytes=*/8);
  exposeDecisions(live, decisions);
  EntryPoint raw = finish("gradients", live, persistent, /*epilogues=*/false);
  // The training step's outputs are its loss alone (above): the probe's
  // are then every value (probeEntry).
  std::vector<CompiledModel::ProbeValue> probeValues;
  EntryPoint probe = model.trains() ? probeEntry(train, persistent, diags.file(), probeValues)
                                    : EntryPoint{"probe", {}, {}, {}};
  return CompiledModel{std::move(model),   std::move(states),  std::move(persistent),
                       std::move(step),    std::move(forward), std::move(predict),
                       std::move(raw),     std::move(twin),    std::move(shard),
                       std::move(update),  std::move(probe),   std::move(probeValues),
                       diags.file().name()};
}

} // namespace netc
