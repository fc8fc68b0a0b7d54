// Decisions.h - the branches the f32 gradients take, shown to the
// double-precision twin that --gradcheck checks them against.
//
// The loss of a ReLU network is piecewise smooth: every relu, abs, max and
// max pooling picks a branch per element. With a batch of images there are
// millions of such choices, and --gradcheck met two of them that say
// nothing about the gradient rules: a finite-difference step that
// straddles a branch point (the differences of examples/lenet.nn at batch
// 128 were off by 0.3-1% at every step size), and an element whose branch
// differs between f32 and f64 (one unit flipping moved whole gradients by
// 1.5% at batch 16). So the f32 gradients entry point leaves every choice
// it made in memory ("decision <i>", an output like the loss), and the
// twin reads them as inputs and computes that branch of the loss: a smooth
// function, whose derivative the differences find at any step, and the
// very function the f32 gradient differentiates.
#pragma once

#include "compiler/graph/Graph.h"

#include <vector>

namespace netc {

/// The nodes of `g` that pick a branch, in graph order: relu, abs, sign,
/// step, max, and max pooling and the offsets its gradient goes by
/// (max_pool2d_index). Pass a graph without dead
/// nodes: exposeDecisions makes every one it is given live.
std::vector<ValueId> decisionNodes(const Graph &g);

/// Adds output "decision <i>" to `g`: the branch node nodes[i] picks, as a
/// tensor of its shape (a pooling's: of its windows') -- step(x) for relu
/// and step, sign(x) for abs and sign, step(a - b) for max(a, b) (a tie
/// goes to b), for a max pooling each window's first maximum as its offset
/// in the window (max_pool2d_index: overlapping windows choose apart).
void exposeDecisions(Graph &g, const std::vector<ValueId> &nodes);

/// A copy of `g` in which node nodes[i] takes the branch input slot
/// `firstSlot + i` holds (an Input "decision <i>" of exposeDecisions's
/// shape): relu(x) -> x·d, abs(x) -> x·d, sign and step -> d, max(a, b) ->
/// b + (a - b)·d, max pooling -> x at each window's offset d (window_take),
/// the offsets of its gradient -> d (window_take_grad then adds dy there).
Graph freezeDecisions(const Graph &g, const std::vector<ValueId> &nodes, int64_t firstSlot);

} // namespace netc
