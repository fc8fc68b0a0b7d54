// GraphTestUtil.h - small helpers to build graphs and random leaf values.
#pragma once

#include "compiler/graph/Graph.h"
#include "compiler/graph/Interpreter.h"

#include <map>
#include <random>
#include <vector>

namespace netc::test {

inline ValueId leaf(Graph &g, Op op, const std::string &name, Shape shape) {
  Attrs a;
  a.name = name;
  a.shape = std::move(shape);
  return g.add(op, {}, a);
}

inline ValueId param(Graph &g, const std::string &name, Shape shape) {
  return leaf(g, Op::Param, name, std::move(shape));
}

inline ValueId input(Graph &g, const std::string &name, Shape shape) {
  return leaf(g, Op::Input, name, std::move(shape));
}

inline ValueId labels(Graph &g, Shape shape) {
  Attrs a;
  a.name = "labels";
  a.shape = std::move(shape);
  a.integer = true;
  return g.add(Op::Input, {}, a);
}

/// How many nodes of `g` have op `op`.
inline size_t count(const Graph &g, Op op) {
  size_t n = 0;
  for (const auto &node : g.nodes())
    n += node.op == op;
  return n;
}

inline ValueId withShape(Graph &g, Op op, ValueId x, Shape shape) {
  Attrs a;
  a.shape = std::move(shape);
  return g.add(op, {x}, a);
}

/// Random values for every Param and Input leaf, in [lo, hi], optionally
/// kept at least `gap` away from zero (for ops with a kink there).
inline std::map<ValueId, std::vector<double>>
randomLeaves(const Graph &g, int64_t batch, std::mt19937_64 &rng, double lo = -2,
             double hi = 2, double gap = 0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::map<ValueId, std::vector<double>> leaves;
  for (size_t i = 0; i < g.size(); ++i) {
    const Node &n = g.node(static_cast<ValueId>(i));
    if (n.op != Op::Param && n.op != Op::Input && n.op != Op::State && n.op != Op::Buffer)
      continue;
    std::vector<double> v(static_cast<size_t>(numel(n.shape, batch)));
    if (n.dtype == DType::I64) { // class labels: 0, 1 or 2
      for (double &x : v)
        x = static_cast<double>(rng() % 3);
      leaves[static_cast<ValueId>(i)] = v;
      continue;
    }
    for (double &x : v) {
      do
        x = dist(rng);
      while (std::abs(x) < gap);
    }
    leaves[static_cast<ValueId>(i)] = v;
  }
  return leaves;
}

} // namespace netc::test
