// Printer.cpp - textual form of the graph IR.
#include "compiler/graph/Printer.h"
#include "compiler/graph/Ops.h"

#include <fmt/format.h>

#include <ostream>

namespace netc {

std::string formatNode(const Graph &graph, ValueId id) {
  const Node &n = graph.node(id);
  std::string s = opName(n.op) + attrText(n, /*beforeOperands=*/true);
  for (size_t i = 0; i < n.inputs.size(); ++i)
    s += fmt::format("{}%{}", i ? ", " : " ", n.inputs[i]);
  s += attrText(n, /*beforeOperands=*/false);
  if (n.op != Op::Assign)
    s += fmt::format(" : {}{}", dtypeName(n.dtype), n.shape.str());
  return s;
}

void printGraph(const Graph &graph, std::string_view name, std::ostream &out) {
  out << "graph " << name << " {\n";
  for (size_t i = 0; i < graph.size(); ++i) {
    auto id = static_cast<ValueId>(i);
    if (graph.node(id).op == Op::Assign)
      out << fmt::format("  {}\n", formatNode(graph, id));
    else
      out << fmt::format("  %{} = {}\n", i, formatNode(graph, id));
  }
  for (const auto &o : graph.outputs)
    out << fmt::format("  output {} = %{}\n", o.name, o.value);
  out << "}\n";
}

} // namespace netc
