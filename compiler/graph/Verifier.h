// Verifier.h - structural checks of a graph, run between passes in debug
// builds and by tests. A failure is a compiler bug, never a user error.
#pragma once

#include "compiler/graph/Graph.h"

#include <string>

namespace netc {

/// Empty if `graph` is well formed, else a description of the first problem:
/// operands defined before use, arities, shapes that match the shape rules,
/// outputs and effects that name existing nodes.
std::string verifyGraph(const Graph &graph);

} // namespace netc
