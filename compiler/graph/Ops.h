// Ops.h - the gradient rules of the graph ops (shape rules: Graph.h).
#pragma once

#include "compiler/graph/Graph.h"

#include <vector>

namespace netc {

/// What a gradient rule sees. `node` is a copy: the graph grows while the
/// rule adds nodes.
struct GradArgs {
  Graph &g;
  Node node;     ///< the op being differentiated
  ValueId self;  ///< its result
  ValueId dy;    ///< adjoint of its result
};

/// The adjoint contribution for each operand of `args.node`, or kNoValue for
/// an operand that gets none (constant, integer-valued, or a piecewise
/// constant op). A contribution may still have the broadcast result shape;
/// the autodiff reduces it to the operand's shape.
std::vector<ValueId> gradientOf(GradArgs args);

/// True when the op has a gradient rule (leaves and effects do not need one).
bool isDifferentiable(Op op);

/// The window of a convolution or pooling node: kernel, stride and padding
/// per side (a convolution's kernel is its weight's [.., .., KH, KW]).
struct WindowGeometry {
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, pt = 0, pb = 0, pl = 0, pr = 0;
  /// Windows along a side of `size` padded by `before` and `after`: 0
  /// when the window is larger than the padded side (C++'s division
  /// rounds -38 / 100 to 0, not down: a 100-wide pool over 62 columns gave
  /// 1 window, which PyTorch refuses).
  static int64_t windows(int64_t size, int64_t before, int64_t after, int64_t k, int64_t s) {
    int64_t span = size + before + after - k;
    return span < 0 ? 0 : span / s + 1;
  }
  int64_t outH(int64_t h) const { return windows(h, pt, pb, kh, sh); }
  int64_t outW(int64_t w) const { return windows(w, pl, pr, kw, sw); }
};
WindowGeometry windowGeometry(Op op, const Attrs &attrs, const Shape *weight);
/// Max pooling (or its gradient, its windows' offsets, the gradient to
/// given offsets) whose windows tile the image: stride = kernel, no
/// padding, at most 16 elements a window. Its gradient writes
/// every image element once (no adding into a zeroed image), so elementwise
/// ops on it can follow in registers (Fuse.cpp, WindowKernel.cpp).
bool tilingMaxPool(const Node &n);

/// Frames' reflect padding (torch.nn.functional.pad, mode "reflect"): the
/// index in a signal of `length` samples of position p of the signal
/// padded by `padLeft` on the left (p within the padded signal).
int64_t reflectIndex(int64_t p, int64_t padLeft, int64_t length);

/// An elementwise op's value on doubles (operand b unused by unary ops).
double evalElementwise(Op op, double a, double b, const Attrs &attrs);

/// flush_denormal's threshold: the smallest normal f32, FLT_MIN.
inline constexpr double kSmallestNormal = 0x1p-126;

/// Dropout with drop probability p keeps an element when its 24 random bits
/// are at least this (runtime.h: netc_dropout_bits).
uint64_t dropoutThreshold(double p);

/// Cheap enough on a register tile to join a matrix product's epilogue.
bool joinsEpilogue(Op op);

/// The attributes that identify a node of its op, as a key (CSE).
std::string attrKey(const Node &n);

/// Those attributes as --emit=graph prints them: the part before the
/// operands (a leaf's name, a constant's value) or after them.
std::string attrText(const Node &n, bool beforeOperands);

/// Test-only (netc --inject-gradient-fault=OP): from now on the gradient
/// rule of `op` returns 1.5 times the right contribution, so tests can
/// show that --gradcheck catches a wrong rule; with "OP:missing" the op
/// has no gradient rule at all, so tests can show that autodiff refuses
/// it. Returns false for an op name that does not exist or has no
/// gradient rule.
bool injectGradientFault(const std::string &spec);

} // namespace netc
