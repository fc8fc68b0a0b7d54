// Simplify.h - algebraic simplification, constant folding, CSE and DCE.
#pragma once

#include "compiler/graph/Graph.h"

namespace netc {

/// Rebuilds `graph` node by node: folds constant scalar arithmetic, applies
/// algebraic identities (x*1, x+0, --x, powi(x, 1), broadcasts that
/// elementwise broadcasting makes redundant, ...), merges identical nodes
/// (CSE) and finally drops every node no output or effect needs (DCE).
/// Outputs and effects keep their order; ids are renumbered.
Graph simplify(const Graph &graph);

/// DCE alone: keeps what outputs and effects need, renumbered in order
/// (`renumbered`, if given: each old id's new one, kNoValue if dropped).
Graph removeDeadNodes(const Graph &graph, std::vector<ValueId> *renumbered = nullptr);

} // namespace netc
