// SimplifyTest.cpp - simplification keeps the meaning of a graph and removes
// what it promises to remove.
#include "compiler/transforms/Simplify.h"
#include "GraphTestUtil.h"
#include "compiler/graph/Verifier.h"
#include "compiler/transforms/Autodiff.h"

#include <gtest/gtest.h>

namespace netc::test {
namespace {

TEST(Simplify, FoldsIdentitiesAndSharesSubexpressions) {
  Graph g;
  ValueId x = input(g, "x", Shape{{kBatch}});
  ValueId a = param(g, "a", Shape{});
  ValueId one = g.constant(1), zero = g.constant(0);
  Attrs two;
  two.k = 2;
  ValueId sq1 = g.add(Op::PowI, {x}, two);
  ValueId sq2 = g.add(Op::PowI, {x}, two); // same value again
  ValueId e = g.binary(Op::Add, g.binary(Op::Mul, g.binary(Op::Mul, a, sq1), one), zero);
  ValueId f = g.binary(Op::Mul, e, g.unary(Op::Neg, g.unary(Op::Neg, sq2)));
  g.outputs.push_back({"f", g.unary(Op::Sum, f)});

  Graph s = simplify(g);
  EXPECT_EQ(verifyGraph(s), "");
  EXPECT_EQ(count(s, Op::PowI), 1u) << "x^2 must be computed once";
  EXPECT_EQ(count(s, Op::Neg), 0u);
  EXPECT_EQ(count(s, Op::Add), 0u) << "+0 must go";
  EXPECT_EQ(count(s, Op::Const), 0u) << "*1 must go";

  std::mt19937_64 rng(7);
  auto leaves = randomLeaves(g, 5, rng);
  double before = interpret(g, 5, leaves).values[static_cast<size_t>(g.output("f"))][0];
  // Leaves come first and survive, so their ids are unchanged.
  double after = interpret(s, 5, leaves).values[static_cast<size_t>(s.output("f"))][0];
  EXPECT_NEAR(before, after, 1e-12 * std::abs(before));
}

TEST(Simplify, FoldsConstantArithmetic) {
  Graph g;
  ValueId x = input(g, "x", Shape{{3}});
  ValueId c = g.binary(Op::Mul, g.constant(2), g.binary(Op::Add, g.constant(1), g.constant(0.5)));
  g.outputs.push_back({"y", g.binary(Op::Mul, c, x)});
  Graph s = simplify(g);
  ASSERT_EQ(count(s, Op::Const), 1u);
  for (const auto &n : s.nodes()) {
    if (n.op == Op::Const) {
      EXPECT_EQ(n.attrs.value, 3.0);
    }
  }
}

// sum_to of a product: factors of the sum's own shape (per channel) come
// out, a negation too, and stop_gradient is gone; the value is the same.
TEST(Simplify, TakesPerChannelFactorsOutOfSums) {
  Graph g;
  ValueId x = input(g, "x", Shape{{kBatch, 2, 3}});
  ValueId c = param(g, "c", Shape{{2, 1}});
  ValueId d = param(g, "d", Shape{{2, 1}});
  Attrs to;
  to.shape = Shape{{2, 1}};
  ValueId scaled = g.binary(Op::Mul, g.binary(Op::Mul, x, c), d);
  ValueId sum = g.add(Op::SumTo, {g.unary(Op::Neg, scaled)}, to);
  ValueId plain = g.add(Op::SumTo, {x}, to);
  ValueId stopped = g.add(Op::StopGradient, {plain}, {});
  g.outputs.push_back({"y", g.binary(Op::Add, sum, stopped)});

  Graph s = simplify(g);
  EXPECT_EQ(verifyGraph(s), "");
  EXPECT_EQ(count(s, Op::SumTo), 1u) << "-sum_to(x)·c·d shares sum_to(x)";
  EXPECT_EQ(count(s, Op::StopGradient), 0u);
  for (const auto &n : s.nodes())
    if (n.op == Op::SumTo)
      EXPECT_EQ(s.node(n.inputs[0]).op, Op::Input) << "the sum is over x alone";

  std::mt19937_64 rng(11);
  auto leaves = randomLeaves(g, 4, rng);
  auto before = interpret(g, 4, leaves).values[static_cast<size_t>(g.output("y"))];
  auto after = interpret(s, 4, leaves).values[static_cast<size_t>(s.output("y"))];
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_NEAR(before[i], after[i], 1e-12 * (1 + std::abs(before[i])));
}

// A ReLU before a max pooling: its mask moves onto the pooled gradient
// (only each window's maximum gets a gradient, and there the image holds
// the pooled value), so the backward pass reads the ReLU's output only
// for the windows' offsets, and no image-sized mask is left.
TEST(Simplify, MovesAReluMaskOntoThePooledGradient) {
  Graph g;
  ValueId x = input(g, "x", Shape{{kBatch, 2, 4, 6}});
  ValueId b = param(g, "b", Shape{{2, 1, 1}});
  ValueId r = g.unary(Op::Relu, g.binary(Op::Sub, x, b));
  Attrs pool;
  pool.window = {2, 2, 2, 2, 0, 0, 0, 0};
  ValueId p = g.add(Op::MaxPool2d, {r}, pool);
  ValueId weights = input(g, "weights", g.shape(p));
  ValueId loss = g.unary(Op::Sum, g.binary(Op::Mul, p, weights));
  g.outputs.push_back({"grad", differentiate(g, loss, {b})[0]});
  g = removeDeadNodes(g);

  Graph s = simplify(g);
  EXPECT_EQ(verifyGraph(s), "");
  ValueId relu = kNoValue;
  for (size_t v = 0; v < s.size(); ++v)
    if (s.node(static_cast<ValueId>(v)).op == Op::Relu)
      relu = static_cast<ValueId>(v);
  ASSERT_NE(relu, kNoValue);
  for (const auto &n : s.nodes()) {
    if (n.op == Op::Step)
      EXPECT_EQ(s.node(n.inputs[0]).op, Op::MaxPool2d) << "the mask is of the pooled values";
    if (std::find(n.inputs.begin(), n.inputs.end(), relu) != n.inputs.end())
      EXPECT_TRUE(n.op == Op::MaxPool2d || n.op == Op::MaxPool2dIndex) << opName(n.op);
  }
  EXPECT_EQ(count(s, Op::MaxPool2d), 1u) << "the mask's pooling is the forward pass's";

  // Exact, with whole windows at 0 (their maximum is the ReLU's 0, the
  // mask's branch point) among them.
  std::mt19937_64 rng(5);
  auto leaves = randomLeaves(g, 3, rng);
  auto before = interpret(g, 3, leaves).values[static_cast<size_t>(g.output("grad"))];
  auto after = interpret(s, 3, leaves).values[static_cast<size_t>(s.output("grad"))];
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_EQ(before[i], after[i]);
}

TEST(Simplify, RemovesDeadNodes) {
  Graph g;
  ValueId x = input(g, "x", Shape{{3}});
  g.unary(Op::Exp, x); // unused
  g.outputs.push_back({"y", g.unary(Op::Sin, x)});
  Graph s = simplify(g);
  EXPECT_EQ(count(s, Op::Exp), 0u);
  EXPECT_EQ(s.size(), 2u);
}

} // namespace
} // namespace netc::test

namespace netc::test {
namespace {

// The reference semantics of the row ops stay finite for huge logits, and
// softmax sums to one.
TEST(Interpreter, SoftmaxIsStable) {
  Graph g;
  ValueId x = input(g, "x", Shape{{2, 3}});
  ValueId sm = g.unary(Op::Softmax, x);
  ValueId lsm = g.unary(Op::LogSoftmax, x);
  std::map<ValueId, std::vector<double>> leaves{{x, {1000, 0, -1000, 1, 2, 3}}};
  auto ev = interpret(g, 1, leaves);
  const auto &p = ev.values[static_cast<size_t>(sm)];
  const auto &lp = ev.values[static_cast<size_t>(lsm)];
  EXPECT_DOUBLE_EQ(p[0], 1.0);
  EXPECT_DOUBLE_EQ(lp[0], 0.0);
  EXPECT_DOUBLE_EQ(lp[2], -2000.0);
  EXPECT_NEAR(p[3] + p[4] + p[5], 1.0, 1e-15);
  EXPECT_NEAR(lp[5], 3 - std::log(std::exp(1) + std::exp(2) + std::exp(3)), 1e-12);
}

} // namespace
} // namespace netc::test
