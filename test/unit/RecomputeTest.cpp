// RecomputeTest.cpp - a value stored only for later loop kernels is computed
// again there instead, with the same result; never across an assign to what
// it is computed from.
#include "compiler/transforms/Recompute.h"
#include "GraphTestUtil.h"
#include "compiler/graph/Verifier.h"

#include <gtest/gtest.h>

namespace netc::test {
namespace {

/// c = x - s, sum(c*c) over the batch, then d = c * that sum (a second
/// loop kernel, after the sum): batch norm's centred input in miniature.
/// With `assignBetween`, s is overwritten after the sum and before d.
Graph centred(bool assignBetween) {
  Graph g;
  ValueId x = input(g, "x", Shape{{kBatch, 512}});
  ValueId s = param(g, "s", Shape{{512}});
  ValueId c = g.binary(Op::Sub, x, s);
  ValueId q = withShape(g, Op::SumTo, g.binary(Op::Mul, c, c), Shape{{512}});
  if (assignBetween)
    g.effects.push_back(g.add(Op::Assign, {s, q}));
  g.outputs.push_back({"d", g.binary(Op::Mul, c, q)});
  return g;
}

TEST(Recompute, ComputesTheCentredValueAgainInsteadOfStoringIt) {
  Graph g = centred(false);
  Schedule before = fuse(g);
  Graph r = g;
  Schedule after = fuseRecomputing(r);
  EXPECT_EQ(verifyGraph(r), "");
  ASSERT_EQ(count(r, Op::Sub), 2u) << "c computed in both loop kernels";
  for (size_t i = 0; i < r.size(); ++i) {
    if (r.node(static_cast<ValueId>(i)).op != Op::Sub)
      continue;
    EXPECT_FALSE(after.materialized[i]) << "%" << i << " stored";
  }
  EXPECT_EQ(after.kernels.size(), before.kernels.size());

  std::mt19937_64 rng(3);
  auto leaves = randomLeaves(g, 4, rng); // leaves come first: same ids
  auto want = interpret(g, 4, leaves).values[static_cast<size_t>(g.output("d"))];
  auto got = interpret(r, 4, leaves).values[static_cast<size_t>(r.output("d"))];
  EXPECT_EQ(want, got);
}

TEST(Recompute, NotAcrossAnAssignToWhatTheValueReads) {
  Graph g = centred(true);
  Graph r = g;
  Schedule after = fuseRecomputing(r);
  EXPECT_EQ(count(r, Op::Sub), 1u);
  EXPECT_EQ(r.size(), g.size());
}

TEST(Recompute, LeavesSmallTensorsStored) {
  Graph g;
  ValueId x = input(g, "x", Shape{{kBatch, 8}}); // 8 values per example
  ValueId s = param(g, "s", Shape{{8}});
  ValueId c = g.binary(Op::Sub, x, s);
  ValueId q = withShape(g, Op::SumTo, g.binary(Op::Mul, c, c), Shape{{8}});
  g.outputs.push_back({"d", g.binary(Op::Mul, c, q)});
  Graph r = g;
  fuseRecomputing(r);
  EXPECT_EQ(count(r, Op::Sub), 1u);
}

} // namespace
} // namespace netc::test
