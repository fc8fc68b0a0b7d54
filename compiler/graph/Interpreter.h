// Interpreter.h - a double-precision reference evaluator of the graph IR.
//
// Slow and simple on purpose: it defines what each op computes. Constant
// folding uses its scalar kernel; tests compare the gradients it computes
// against finite differences, and generated code against it.
#pragma once

#include "compiler/graph/Graph.h"

#include <map>
#include <vector>

namespace netc {

/// An elementwise op on scalars (b is ignored by unary ops).
double applyElementwise(Op op, const Attrs &attrs, double a, double b);

/// Values of every node, flat row-major. Leaves other than Const and
/// BatchSize are taken from `leaves` (keyed by node id); hparams by index.
struct Evaluation {
  std::vector<std::vector<double>> values;
};
Evaluation interpret(const Graph &graph, int64_t batch,
                     const std::map<ValueId, std::vector<double>> &leaves,
                     const std::vector<double> &hparams = {});

/// Number of elements of `shape` for batch size `batch`.
int64_t numel(const Shape &shape, int64_t batch);

} // namespace netc
