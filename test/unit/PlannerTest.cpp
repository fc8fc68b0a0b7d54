// PlannerTest.cpp - the memory plan never lets two live buffers overlap, and
// does reuse memory when lifetimes allow.
#include "GraphTestUtil.h"
#include "compiler/plan/MemoryPlanner.h"
#include "compiler/transforms/Fuse.h"

#include <gtest/gtest.h>

namespace netc::test {
namespace {

TEST(Planner, LiveBuffersNeverOverlap) {
  // A chain of matrix products: each result is live only until the next.
  Graph g;
  ValueId x = input(g, "x", Shape{{kBatch, 8}});
  ValueId v = x;
  for (int i = 0; i < 6; ++i) {
    ValueId w = param(g, "w" + std::to_string(i), Shape{{8, 8}});
    Attrs at;
    at.transB = true;
    v = g.add(Op::MatMul, {v, w}, at);
    v = g.unary(Op::Relu, v);
  }
  g.outputs.push_back({"loss", g.unary(Op::Sum, v)});
  Schedule s = fuse(g);
  Model m;
  for (size_t i = 0; i < g.size(); ++i)
    if (g.node(static_cast<ValueId>(i)).op == Op::Param)
      m.params.push_back({g.node(static_cast<ValueId>(i)).attrs.name, Shape{{8, 8}}, {}, static_cast<ValueId>(i)});
  for (size_t i = 0; i < g.size(); ++i)
    if (g.node(static_cast<ValueId>(i)).op == Op::Param) {
      Node &n = const_cast<Node &>(g.node(static_cast<ValueId>(i)));
      n.attrs.k = static_cast<int64_t>(std::stoi(n.attrs.name.substr(1)));
    }
  PersistentLayout layout = layoutPersistent(m, {});
  MemoryPlan plan = planMemory(g, s, layout);

  int64_t sum = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const Buffer &a = plan.buffers[i];
    if (a.region != Buffer::Region::Batch && a.region != Buffer::Region::Fixed)
      continue;
    sum += a.bytes;
    for (size_t j = i + 1; j < g.size(); ++j) {
      const Buffer &b = plan.buffers[j];
      if (b.region != a.region)
        continue;
      bool liveTogether = !(a.lastKernel < b.firstKernel || b.lastKernel < a.firstKernel);
      bool overlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
      EXPECT_FALSE(liveTogether && overlap) << "%" << i << " and %" << j;
    }
  }
  EXPECT_LT(plan.batchBytesPerN, sum) << "dead buffers should be reused";
}

} // namespace
} // namespace netc::test
