// Pipeline.h - the whole middle end in one place: from a checked Model to
// the scheduled, planned graphs of every entry point.
#pragma once

#include "compiler/plan/MemoryPlanner.h"
#include "compiler/sema/Model.h"
#include "compiler/transforms/Fuse.h"
#include "compiler/transforms/Optimizers.h"
#include "dsl/Diagnostics.h"

#include <iosfwd>
#include <optional>

namespace netc {

/// One generated function, reached through the model descriptor.
struct EntryPoint {
  std::string name; ///< "train_step", "forward", "predict" or "gradients"
  Graph graph;
  Schedule schedule;
  MemoryPlan plan;
};

struct CompiledModel {
  Model model;
  std::vector<StateSpec> states;
  PersistentLayout persistent;
  EntryPoint trainStep;
  EntryPoint forward;
  /// The model's output from its inputs alone (output "prediction"); empty
  /// (no graph outputs) for a model without one.
  EntryPoint predict;
  /// The raw gradients, unfused with any update: outputs "grad <i>" per
  /// parameter, for --grad-stats.
  EntryPoint gradients;
  /// The gradients' plan in double precision, for the f64 twin
  /// netc_gradients_f64 that --gradcheck compares against.
  MemoryPlan gradientsPlan64;
};

/// Where the pipeline may stop and print (`--emit=`).
enum class Stage { Graph, Modes, Grad, Step, Opt, Plan, Done };

/// Runs, in order: the specialisation to training and evaluation behaviour
/// (modes), autodiff (grad), optimizer updates (step), simplification
/// and fusion (opt), memory planning (plan). Verifies the graph after each
/// stage. With `stopAfter` before Done, prints that stage's result of the
/// train_step graph to `out` and returns nullopt.
///
/// A model the pipeline cannot compile (an op without a gradient rule on the
/// way from the loss to a parameter) is reported to `diags`; the result is
/// then nullopt too.
std::optional<CompiledModel> runPipeline(Model model, Stage stopAfter, std::ostream &out,
                                         DiagnosticEngine &diags);

} // namespace netc
