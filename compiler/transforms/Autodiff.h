// Autodiff.h - reverse-mode differentiation of a graph, at compile time.
#pragma once

#include "compiler/graph/Graph.h"

#include <vector>

namespace netc {

/// Appends to `graph` the gradient of the scalar `loss` with respect to each
/// of `wrt` and returns their ids, in order. A value the loss does not depend
/// on gets a zero gradient.
///
/// Algorithm: 1. mark the nodes that depend on any of `wrt`; 2. seed the
/// adjoint of `loss` with 1; 3. walk the nodes in reverse order, asking each
/// op's gradient rule (Ops.cpp) for its operands' contributions; 4. reduce a
/// contribution of broadcast shape back to its operand's shape (sum_to) and
/// sum the contributions of multi-use values.
///
/// An op the loss flows through that has no gradient rule is an error, never
/// a silent zero: the result is then empty and `missing` names that node.
std::vector<ValueId> differentiate(Graph &graph, ValueId loss,
                                   const std::vector<ValueId> &wrt,
                                   ValueId *missing = nullptr);

} // namespace netc
