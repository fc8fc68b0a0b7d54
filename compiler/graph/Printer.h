// Printer.h - textual form of the graph IR (`--emit=graph|grad|step`).
#pragma once

#include "compiler/graph/Graph.h"

#include <iosfwd>
#include <string>

namespace netc {

/// One node per line, `%id = op operands attrs : type`, then the outputs and
/// effects. Ids are positions in the graph.
void printGraph(const Graph &graph, std::string_view name, std::ostream &out);

/// The right-hand side of one node, e.g. `mul %1, %0 : f32[N]`.
std::string formatNode(const Graph &graph, ValueId id);

} // namespace netc
