// Modes.h - training and evaluation behaviour from one model declaration.
//
// Sema writes what differs between the two modes as mode ops (Ops.def:
// dropout, batch_norm). Before differentiation the pipeline specialises the
// forward graph twice: the training step's graph and the evaluation graph
// of forward and predict. Everything else is copied as is.
#pragma once

#include "compiler/graph/Graph.h"

namespace netc {

enum class Mode { Train, Eval };

/// The first of the two hparam slots that hold a training step's random key
/// (runtime.h: netc_dropout_key), given how many hparams the optimizer uses.
struct ModeOptions {
  int64_t keySlot = 0;
};

/// `graph` with every mode op replaced by its behaviour in `mode`:
///  - dropout(x, p): training: dropout_train(x, key) (x / (1 - p) where the
///    step's random bits keep it, else 0); evaluation: x.
///  - batch_norm(x, weight, bias, mean, var, count): training: x normalised
///    by its batch's per-channel mean and biased variance, scaled and
///    shifted, with effects that update the running statistics by
///    PyTorch's rule (m <- (1 - momentum) m + momentum mean; v likewise
///    with the unbiased variance; count + 1); evaluation: normalised by the
///    running statistics.
Graph specialize(const Graph &graph, Mode mode, const ModeOptions &options);

/// True when the graph holds a dropout whose training behaviour is random.
bool hasRandomDropout(const Graph &graph);

} // namespace netc
