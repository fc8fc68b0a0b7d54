// DecisionsTest.cpp - the branches a gradients graph takes, shown and then
// taken as given: the frozen graph computes the same loss and gradients at
// the point the branches came from, and is smooth around it (its finite
// differences agree with its gradient at any step, where the original's
// straddle kinks).
#include "compiler/transforms/Decisions.h"
#include "GraphTestUtil.h"
#include "compiler/graph/Verifier.h"
#include "compiler/transforms/Autodiff.h"
#include "compiler/transforms/Simplify.h"

#include <gtest/gtest.h>

#include <cmath>

namespace netc::test {
namespace {

constexpr int64_t kBatchSize = 3;

/// relu(x·w - b), a max pooling (by default 2 x 2), max(p, |p - 0.5|),
/// summed with weights, and its gradients: every op that picks a branch,
/// forward and backward.
Graph branchy(std::vector<int64_t> window = {2, 2, 2, 2, 0, 0, 0, 0}) {
  Graph g;
  ValueId x = input(g, "x", Shape{{kBatch, 2, 5, 7}});
  ValueId w = param(g, "w", Shape{{2, 1, 1}});
  ValueId b = param(g, "b", Shape{{2, 1, 1}});
  ValueId r = g.unary(Op::Relu, g.binary(Op::Sub, g.binary(Op::Mul, x, w), b));
  Attrs pool;
  pool.window = std::move(window);
  ValueId p = g.add(Op::MaxPool2d, {r}, pool);
  ValueId far = g.unary(Op::Abs, g.binary(Op::Sub, p, g.constant(0.5)));
  ValueId m = g.binary(Op::Max, p, far);
  ValueId weights = input(g, "weights", g.shape(m));
  ValueId loss = g.unary(Op::Sum, g.binary(Op::Mul, m, weights));
  g.outputs.push_back({"loss", loss});
  std::vector<ValueId> grads = differentiate(g, loss, {w, b});
  for (size_t i = 0; i < grads.size(); ++i)
    g.outputs.push_back({"grad " + std::to_string(i), grads[i]});
  return removeDeadNodes(g);
}

double output(const Graph &g, const Evaluation &e, const std::string &name, size_t i = 0) {
  return e.values[static_cast<size_t>(g.output(name))][i];
}

/// The frozen copy of `g` gives its loss and gradients at the point the
/// decisions come from, and is smooth where `g` is not.
void expectFrozenAgrees(const Graph &g) {
  std::vector<ValueId> nodes = decisionNodes(g);
  // relu, max pooling, abs, max forward; step (relu), max pooling's
  // offsets (its gradient), sign (abs), step (max) backward.
  ASSERT_GE(nodes.size(), 8u);
  Graph shown = g;
  exposeDecisions(shown, nodes);
  Graph frozen = freezeDecisions(g, nodes, /*firstSlot=*/2);
  EXPECT_EQ(verifyGraph(shown), "");
  EXPECT_EQ(verifyGraph(frozen), "");
  for (const Node &n : frozen.nodes())
    EXPECT_TRUE(n.op != Op::Relu && n.op != Op::Max && n.op != Op::MaxPool2d &&
                n.op != Op::MaxPool2dIndex && n.op != Op::Step && n.op != Op::Sign &&
                n.op != Op::Abs)
        << opName(n.op) << " left in the frozen graph";

  std::mt19937_64 rng(7);
  auto leaves = randomLeaves(g, kBatchSize, rng); // `shown` only appends: the same ids
  Evaluation base = interpret(shown, kBatchSize, leaves);
  // The frozen graph's leaves by name: the data and parameters, and the
  // decisions `shown` output.
  std::map<ValueId, std::vector<double>> frozenLeaves;
  for (size_t v = 0; v < frozen.size(); ++v) {
    const Node &n = frozen.node(static_cast<ValueId>(v));
    if (n.op != Op::Input && n.op != Op::Param)
      continue;
    if (n.attrs.name.starts_with("decision ")) {
      EXPECT_EQ(n.attrs.k, 2 + std::stoll(n.attrs.name.substr(9)));
      frozenLeaves[static_cast<ValueId>(v)] =
          base.values[static_cast<size_t>(shown.output(n.attrs.name))];
      continue;
    }
    for (const auto &[id, values] : leaves)
      if (g.node(id).attrs.name == n.attrs.name)
        frozenLeaves[static_cast<ValueId>(v)] = values;
  }
  ValueId w = kNoValue, frozenW = kNoValue;
  for (const auto &[id, values] : leaves)
    if (g.node(id).attrs.name == "w")
      w = id;
  for (const auto &[id, values] : frozenLeaves)
    if (frozen.node(id).attrs.name == "w")
      frozenW = id;
  ASSERT_NE(w, kNoValue);
  ASSERT_NE(frozenW, kNoValue);
  Evaluation same = interpret(frozen, kBatchSize, frozenLeaves);
  EXPECT_NEAR(output(frozen, same, "loss"), output(shown, base, "loss"), 1e-12);
  for (const char *grad : {"grad 0", "grad 1"})
    for (size_t i = 0; i < 2; ++i)
      EXPECT_NEAR(output(frozen, same, grad, i), output(shown, base, grad, i), 1e-12) << grad;

  // Frozen, the loss is linear in w: central differences are exact at a
  // step that crosses many kinks of the original.
  double h = 0.5;
  auto difference = [&](const Graph &graph, std::map<ValueId, std::vector<double>> l, ValueId p) {
    l[p][0] += h;
    double up = output(graph, interpret(graph, kBatchSize, l), "loss");
    l[p][0] -= 2 * h;
    double down = output(graph, interpret(graph, kBatchSize, l), "loss");
    return (up - down) / (2 * h);
  };
  double analytic = output(shown, base, "grad 0");
  EXPECT_NEAR(difference(frozen, frozenLeaves, frozenW), analytic, 1e-9 * std::abs(analytic));
  EXPECT_GT(std::abs(difference(shown, leaves, w) - analytic), 1e-3 * std::abs(analytic))
      << "the step crosses no kink of the original: the test shows nothing";
}

TEST(Decisions, FrozenGraphGivesTheSameLossAndGradients) { expectFrozenAgrees(branchy()); }

// Windows that share rows and columns, and padding: an element can be one
// window's maximum and not its neighbour's, so each window keeps its own
// choice (its offset), not a mask over the image.
TEST(Decisions, OverlappingPaddedPoolingsFreezeToo) {
  expectFrozenAgrees(branchy({3, 3, 2, 2, 1, 1, 1, 1}));
}

} // namespace
} // namespace netc::test
