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
  /// parameter, for --grad-stats, and "decision <i>", the branches they
  /// took (Decisions.h).
  EntryPoint gradients;
  /// Their double-precision twin netc_gradients_f64, which --gradcheck
  /// compares them against: the same graph taking the same branches, read
  /// from inputs after the data's fields (Decisions.h); planned for 8-byte
  /// elements.
  EntryPoint gradients64;
  /// --distributed (Shards.h): one shard's gradients, dividing by the whole
  /// batch's size (hparam `hparamCount`), and the update from summed
  /// gradients; empty graphs otherwise.
  EntryPoint shardGradients;
  EntryPoint applyUpdate;
  bool distributed() const { return !shardGradients.graph.outputs.empty(); }

  /// --check-finite's probe: the training step unfused, every value it
  /// computes an output (so in memory, and kept to the end), in execution
  /// order in `probeValues`; its scratch is its own (not the step's), made
  /// only when a diagnosis needs it.
  EntryPoint probe;
  struct ProbeValue {
    std::string output; ///< "probe <node>"
    std::string op, origin, label; ///< origin: Node::origin
    Phase phase;
    size_t line, column; ///< in the .nn file
  };
  std::vector<ProbeValue> probeValues;
  std::string source; ///< the .nn file's name, as given
};

struct PipelineOptions {
  /// Also build the entry points of data-parallel training; the loss must
  /// be a sum or mean of per-example terms (checked, reported to diags).
  bool distributed = false;
};

/// Where the pipeline may stop and print (`--emit=`).
enum class Stage { Graph, Modes, Grad, Step, Opt, Plan, Done };

/// One of the hparams a step takes, in index order: the learning rate
/// (NETC_HPARAM_LR, value: the .nn file's), the step hyperparameters
/// (NETC_HPARAM_STEP: 1 - value^(step + offset), Optimizers.h), then with
/// dropout the step's random key in two halves (NETC_HPARAM_KEY_LOW/HIGH,
/// runtime.h). The descriptor's C table and the description list these.
struct HParam {
  int kind;
  std::string name;
  double value = 0;
  int offset = 0;
};
std::vector<HParam> hparams(const Model &model);

/// The number of hparams the training step takes; shard_gradients reads
/// one more, the whole batch's example count, at this index.
int64_t hparamCount(const Model &model);

/// Runs, in order: the specialisation to training and evaluation behaviour
/// (modes), autodiff (grad), optimizer updates (step), simplification
/// and fusion (opt), memory planning (plan). Verifies the graph after each
/// stage. With `stopAfter` before Done, prints that stage's result of the
/// train_step graph to `out` and returns nullopt.
///
/// A model the pipeline cannot compile (an op without a gradient rule on the
/// way from the loss to a parameter; with --distributed, a loss that mixes
/// a batch's examples) is reported to `diags`; the result is then nullopt
/// too. With --distributed, --emit=opt prints the shard_gradients kernels,
/// marking where each parameter's gradient is ready to be communicated.
std::optional<CompiledModel> runPipeline(Model model, Stage stopAfter, std::ostream &out,
                                         DiagnosticEngine &diags,
                                         const PipelineOptions &options = {});

} // namespace netc
