// Printer.cpp - textual form of the graph IR.
#include "compiler/graph/Printer.h"

#include <fmt/format.h>

#include <ostream>

namespace netc {

std::string formatNode(const Graph &graph, ValueId id) {
  const Node &n = graph.node(id);
  std::string s = opName(n.op);
  switch (n.op) {
  case Op::Input:
  case Op::Param:
  case Op::State:
  case Op::HParam:
    s += fmt::format(" \"{}\"", n.attrs.name);
    break;
  case Op::Const:
    s += fmt::format(" {}", n.attrs.value);
    break;
  default:
    break;
  }
  for (size_t i = 0; i < n.inputs.size(); ++i)
    s += fmt::format("{}%{}", i ? ", " : " ", n.inputs[i]);
  switch (n.op) {
  case Op::PowI:
  case Op::Slice:
  case Op::Scatter:
    s += fmt::format(", {}", n.attrs.k);
    break;
  case Op::SumTo:
  case Op::BroadcastTo:
  case Op::Reshape:
    s += fmt::format(" to {}", n.attrs.shape.str());
    break;
  case Op::MatMul:
    if (n.attrs.transA)
      s += " transA";
    if (n.attrs.transB)
      s += " transB";
    break;
  default:
    break;
  }
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
