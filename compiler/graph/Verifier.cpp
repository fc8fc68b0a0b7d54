// Verifier.cpp - structural checks of a graph.
#include "compiler/graph/Verifier.h"
#include "compiler/graph/Printer.h"

#include <fmt/format.h>

namespace netc {

std::string verifyGraph(const Graph &graph) {
  for (size_t i = 0; i < graph.size(); ++i) {
    const Node &n = graph.node(static_cast<ValueId>(i));
    std::vector<const Shape *> shapes;
    for (ValueId v : n.inputs) {
      if (v < 0 || static_cast<size_t>(v) >= i)
        return fmt::format("%{}: operand %{} is not defined before it", i, v);
      shapes.push_back(&graph.shape(v));
    }
    ShapeResult r = inferShape(n.op, shapes, n.attrs);
    if (!r.error.empty())
      return fmt::format("%{} = {}: {}", i,
                         formatNode(graph, static_cast<ValueId>(i)), r.error);
    if (!(r.shape == n.shape))
      return fmt::format("%{}: recorded shape {} but the rule gives {}", i,
                         n.shape.str(), r.shape.str());
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      bool labels = (n.op == Op::Pick || n.op == Op::Scatter) && k == 1;
      if ((graph.node(n.inputs[k]).dtype == DType::I64) != labels)
        return fmt::format("%{}: operand {} has the wrong element type", i, k);
    }
    if (n.op == Op::Assign) {
      Op target = graph.node(n.inputs[0]).op;
      if (target != Op::Param && target != Op::State && target != Op::Buffer)
        return fmt::format("%{}: assign to a non-persistent value", i);
    }
  }
  auto valid = [&](ValueId v) {
    return v >= 0 && static_cast<size_t>(v) < graph.size();
  };
  for (const auto &o : graph.outputs)
    if (!valid(o.value))
      return fmt::format("output {} names no node", o.name);
  for (ValueId e : graph.effects)
    if (!valid(e) || graph.node(e).op != Op::Assign)
      return fmt::format("effect %{} is not an assign", e);
  return {};
}

} // namespace netc
