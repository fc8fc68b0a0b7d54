// Recompute.h - cheap values computed again where they are read, instead
// of written to memory for later kernels.
//
// Greedy fusion computes a value once, in the first loop kernel that can,
// and stores it when a later kernel reads it. When that value is a few
// cheap elementwise ops on one tensor already in memory and on small ones
// (per-channel statistics, scalars), the later kernel can compute it again
// from what it would read anyway: the store and one full pass of writes
// are saved. Batch norm is the case that pays: the training step of
// examples/lenet.nn stored x - mean ([N, 6, 28, 28]) for the normalisation
// and both backward passes, and the scaled gradient dy·γ·invstd for the
// second backward pass.
//
// Done between fusion and a second fusion: the first schedule says which
// values are stored and which kernels read them. Nothing is recomputed
// across an assign to what the value is computed from, so every copy gives
// the bits of the original.
#pragma once

#include "compiler/graph/Graph.h"
#include "compiler/transforms/Fuse.h"

namespace netc {

/// Fuses `graph` (with epilogues), first rewriting it so that each value
/// worth recomputing is computed again, by a copy right before each reader
/// in a later loop kernel of its shape (or such a loop fused into a
/// window kernel, Fuse.h: fusedLoop); the copies are sunk into their
/// readers' kernels. A value is worth recomputing when its loop kernel
/// stores it only for such readers and it is add, sub, mul, neg, relu or
/// step of values that kernel computes the same way (in registers), at most
/// one tensor of its shape in memory, smaller tensors in memory and
/// constants. Repeats while something changes (a few rounds).
Schedule fuseRecomputing(Graph &graph);

} // namespace netc
