// GradCheckTest.cpp - every op's gradient rule against central finite
// differences, in double precision, through the reference interpreter.
//
// For op f with differentiable operands p1..pk (Param leaves), the checked
// scalar is L = sum(f(p1..pk) * W) with W a random Input of f's shape, so
// every output element gets a different weight. The gradients autodiff
// derives for L are compared with (L(p + h e_i) - L(p - h e_i)) / 2h.
#include "GraphTestUtil.h"
#include "compiler/graph/Ops.h"
#include "compiler/transforms/Autodiff.h"
#include "compiler/transforms/Modes.h"
#include "compiler/transforms/Simplify.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

namespace netc::test {
namespace {

constexpr int64_t kBatchSize = 3;
/// hparams 1 and 2: a dropout key (runtime.h: two 24-bit halves).
const std::vector<double> kHParams = {0, 1234567, 89};

struct Case {
  std::string name;
  /// Builds f from the params it creates; returns f's result.
  std::function<ValueId(Graph &)> build;
  double lo = -2, hi = 2, gap = 0;
};

void PrintTo(const Case &c, std::ostream *os) { *os << c.name; }

/// Relative error of a against b, with an absolute floor for tiny values.
double relError(double a, double b) {
  return std::abs(a - b) / std::max(1e-6, std::max(std::abs(a), std::abs(b)));
}

void checkGradients(const Case &c, bool simplified) {
  Graph g;
  ValueId f = c.build(g);
  ValueId w = input(g, "W", g.shape(f));
  ValueId loss = g.unary(Op::Sum, g.binary(Op::Mul, f, w));
  g.outputs.push_back({"loss", loss});
  std::vector<ValueId> params;
  for (size_t i = 0; i < g.size(); ++i)
    if (g.node(static_cast<ValueId>(i)).op == Op::Param)
      params.push_back(static_cast<ValueId>(i));
  std::vector<ValueId> grads = differentiate(g, loss, params);
  for (size_t i = 0; i < grads.size(); ++i) {
    g.outputs.push_back({"grad" + std::to_string(i), grads[i]});
    g.outputs.push_back({"param" + std::to_string(i), params[i]}); // keeps it findable
  }
  if (simplified) {
    g = simplify(g);
    for (size_t i = 0; i < params.size(); ++i)
      params[i] = g.output("param" + std::to_string(i));
  }
  std::mt19937_64 rng(1234);
  auto leaves = randomLeaves(g, kBatchSize, rng, c.lo, c.hi, c.gap);

  auto lossAt = [&](const std::map<ValueId, std::vector<double>> &l) {
    return interpret(g, kBatchSize, l, kHParams).values[static_cast<size_t>(g.output("loss"))][0];
  };
  auto ev = interpret(g, kBatchSize, leaves, kHParams);
  for (size_t p = 0; p < params.size(); ++p) {
    const auto &analytic = ev.values[static_cast<size_t>(g.output("grad" + std::to_string(p)))];
    auto &values = leaves[params[p]];
    ASSERT_EQ(analytic.size(), values.size()) << c.name;
    for (size_t i = 0; i < values.size(); ++i) {
      double saved = values[i];
      double h = 1e-6 * std::max(1.0, std::abs(saved));
      values[i] = saved + h;
      double up = lossAt(leaves);
      values[i] = saved - h;
      double down = lossAt(leaves);
      values[i] = saved;
      double numeric = (up - down) / (2 * h);
      EXPECT_LE(relError(analytic[i], numeric), 1e-6)
          << c.name << (simplified ? " (simplified)" : "") << ": d/d param " << p
          << "[" << i << "]: autodiff " << analytic[i] << ", finite differences " << numeric;
    }
  }
}

ValueId unary(Graph &g, Op op, Shape s) { return g.unary(op, param(g, "x", std::move(s))); }

ValueId binary(Graph &g, Op op, Shape a, Shape b) {
  ValueId x = param(g, "a", std::move(a));
  ValueId y = param(g, "b", std::move(b));
  return g.binary(op, x, y);
}

/// A convolution (x, weight) or pooling (x) with attrs.window `window`.
ValueId windowOp(Graph &g, Op op, Shape x, Shape weight, std::vector<int64_t> window) {
  Attrs a;
  a.window = std::move(window);
  std::vector<ValueId> in = {param(g, "x", std::move(x))};
  if (op == Op::Conv2d)
    in.push_back(param(g, "w", std::move(weight)));
  return g.add(op, in, a);
}

/// A mode op's training behaviour: `g` becomes the specialised graph.
ValueId training(Graph &g, ValueId modeOp) {
  g.outputs = {{"f", modeOp}};
  g = specialize(g, Mode::Train, ModeOptions{1});
  ValueId f = g.output("f");
  g.outputs.clear();
  return f;
}

ValueId batchNorm(Graph &g, Shape x, double eps) {
  int64_t c = x.dims[1];
  std::vector<ValueId> in = {param(g, "x", x), param(g, "weight", Shape{{c}}),
                             param(g, "bias", Shape{{c}})};
  for (const char *name : {"mean", "var"}) {
    Attrs a;
    a.name = name;
    a.shape = Shape{{c}};
    in.push_back(g.add(Op::Buffer, {}, a));
  }
  Attrs count;
  count.name = "count";
  in.push_back(g.add(Op::Buffer, {}, count));
  Attrs a;
  a.value = eps;
  a.momentum = 0.1;
  return training(g, g.add(Op::BatchNorm, in, a));
}

ValueId realPower(Graph &g, double c) {
  Attrs a;
  a.value = c;
  return g.add(Op::Pow, {param(g, "x", Shape{{kBatch, 2}})}, a);
}

ValueId powi(Graph &g, int64_t k) {
  Attrs a;
  a.k = k;
  return g.add(Op::PowI, {param(g, "x", Shape{{kBatch, 2}})}, a);
}

ValueId matmul(Graph &g, bool ta, bool tb) {
  ValueId a = param(g, "a", ta ? Shape{{4, kBatch}} : Shape{{kBatch, 4}});
  ValueId b = param(g, "b", tb ? Shape{{5, 4}} : Shape{{4, 5}});
  Attrs at;
  at.transA = ta;
  at.transB = tb;
  return g.add(Op::MatMul, {a, b}, at);
}

const Shape kNx2{{kBatch, 2}};

std::vector<Case> cases() {
  return {
      {"neg", [](Graph &g) { return unary(g, Op::Neg, kNx2); }},
      {"exp", [](Graph &g) { return unary(g, Op::Exp, kNx2); }},
      {"log", [](Graph &g) { return unary(g, Op::Log, kNx2); }, 0.5, 3},
      {"sin", [](Graph &g) { return unary(g, Op::Sin, kNx2); }},
      {"cos", [](Graph &g) { return unary(g, Op::Cos, kNx2); }},
      {"sigmoid", [](Graph &g) { return unary(g, Op::Sigmoid, kNx2); }},
      {"tanh", [](Graph &g) { return unary(g, Op::Tanh, kNx2); }},
      {"relu", [](Graph &g) { return unary(g, Op::Relu, kNx2); }, -2, 2, 0.1},
      {"sqrt", [](Graph &g) { return unary(g, Op::Sqrt, kNx2); }, 0.5, 3},
      {"pow 0.5", [](Graph &g) { return realPower(g, 0.5); }, 0.5, 3},
      {"pow -1.5", [](Graph &g) { return realPower(g, -1.5); }, 0.5, 3},
      {"pow 2.7", [](Graph &g) { return realPower(g, 2.7); }, 0.5, 3},
      {"abs", [](Graph &g) { return unary(g, Op::Abs, kNx2); }, -2, 2, 0.1},
      {"sign (zero gradient)", [](Graph &g) { return unary(g, Op::Sign, kNx2); }, -2, 2, 0.1},
      {"step (zero gradient)", [](Graph &g) { return unary(g, Op::Step, kNx2); }, -2, 2, 0.1},
      {"flush_denormal (the identity off 0)", [](Graph &g) { return unary(g, Op::FlushDenormal, kNx2); }, -2, 2, 0.1},
      {"powi 2", [](Graph &g) { return powi(g, 2); }},
      {"powi 3", [](Graph &g) { return powi(g, 3); }},
      {"powi -2", [](Graph &g) { return powi(g, -2); }, -2, 2, 0.5},
      {"powi 0", [](Graph &g) { return powi(g, 0); }},
      {"add", [](Graph &g) { return binary(g, Op::Add, kNx2, kNx2); }},
      {"add broadcast row", [](Graph &g) { return binary(g, Op::Add, kNx2, Shape{{2}}); }},
      {"add broadcast scalar", [](Graph &g) { return binary(g, Op::Add, Shape{}, kNx2); }},
      {"sub broadcast", [](Graph &g) { return binary(g, Op::Sub, Shape{{kBatch, 1}}, Shape{{1, 3}}); }},
      {"mul broadcast", [](Graph &g) { return binary(g, Op::Mul, Shape{{2}}, kNx2); }},
      {"div", [](Graph &g) { return binary(g, Op::Div, kNx2, Shape{}); }, -2, 2, 0.5},
      {"div both", [](Graph &g) { return binary(g, Op::Div, kNx2, kNx2); }, -2, 2, 0.5},
      {"max", [](Graph &g) { return binary(g, Op::Max, kNx2, Shape{{2}}); }},
      {"sum", [](Graph &g) { return g.unary(Op::Sum, param(g, "x", kNx2)); }},
      {"sum_to", [](Graph &g) { return withShape(g, Op::SumTo, param(g, "x", Shape{{kBatch, 3}}), Shape{{3}}); }},
      {"sum_to keepdim", [](Graph &g) { return withShape(g, Op::SumTo, param(g, "x", Shape{{2, 3}}), Shape{{2, 1}}); }},
      {"broadcast_to", [](Graph &g) { return withShape(g, Op::BroadcastTo, param(g, "x", Shape{{3}}), Shape{{kBatch, 3}}); }},
      {"reshape", [](Graph &g) { return withShape(g, Op::Reshape, param(g, "x", Shape{{kBatch, 6}}), Shape{{kBatch, 2, 3}}); }},
      {"stack", [](Graph &g) {
         ValueId a = param(g, "a", Shape{{kBatch}}), b = param(g, "b", Shape{{kBatch}});
         return g.add(Op::Stack, {a, g.binary(Op::Mul, a, b), b});
       }},
      {"slice", [](Graph &g) {
         Attrs a;
         a.k = 1;
         return g.add(Op::Slice, {param(g, "x", Shape{{kBatch, 3}})}, a);
       }},
      {"transpose", [](Graph &g) { return unary(g, Op::Transpose, Shape{{kBatch, 2, 3}}); }},
      {"frames with reflect padding", [](Graph &g) {
         Attrs a;
         a.window = {4, 3, 2, 3}; // width 4, hop 3, padding 2 left, 3 right
         return g.add(Op::Frames, {param(g, "x", Shape{{kBatch, 2, 7}})}, a);
       }},
      {"frames_grad", [](Graph &g) {
         Attrs a;
         a.window = {3, 2, 1, 1};
         a.shape = Shape{{kBatch, 5}};
         return g.add(Op::FramesGrad, {param(g, "x", Shape{{kBatch, 3, 3}})}, a);
       }},
      {"power_spectrum", [](Graph &g) {
         Attrs a;
         a.window = {8, 6}; // n_fft 8, a Hann window of 6 centred in it
         return g.add(Op::PowerSpectrum, {param(g, "x", Shape{{kBatch, 2, 8}})}, a);
       }},
      {"matmul rank 3 by a table", [](Graph &g) {
         ValueId t = g.table("t", Shape{{3, 2}}, {0.5, -1, 2, 0.25, -0.75, 1.5});
         return g.add(Op::MatMul, {param(g, "x", Shape{{kBatch, 4, 3}}), t});
       }},
      {"matmul rank 3 by a parameter", [](Graph &g) {
         return g.add(Op::MatMul, {param(g, "x", Shape{{kBatch, 2, 3}}), param(g, "w", Shape{{3, 4}})});
       }},
      {"conv2d stride 1 2, padding 1 0 1 1", [](Graph &g) {
         return windowOp(g, Op::Conv2d, Shape{{kBatch, 2, 5, 4}}, Shape{{3, 2, 3, 2}}, {1, 2, 1, 0, 1, 1});
       }},
      {"conv2d stride 2", [](Graph &g) {
         return windowOp(g, Op::Conv2d, Shape{{kBatch, 1, 6, 6}}, Shape{{2, 1, 3, 3}}, {2, 2, 0, 0, 0, 0});
       }},
      {"max_pool2d 2x2", [](Graph &g) {
         return windowOp(g, Op::MaxPool2d, Shape{{kBatch, 2, 4, 5}}, Shape{}, {2, 2, 2, 2, 0, 0, 0, 0});
       }},
      {"max_pool2d 3x2 overlapping, padded", [](Graph &g) {
         return windowOp(g, Op::MaxPool2d, Shape{{kBatch, 1, 5, 4}}, Shape{}, {3, 2, 1, 1, 1, 1, 0, 1});
       }},
      {"avg_pool2d 2x3 stride 1 2", [](Graph &g) {
         return windowOp(g, Op::AvgPool2d, Shape{{kBatch, 2, 4, 6}}, Shape{}, {2, 3, 1, 2, 0, 0, 0, 0});
       }},
      {"dropout_train p 0.4", [](Graph &g) {
         Attrs a;
         a.value = 0.4;
         a.k = 3;
         return training(g, g.add(Op::Dropout, {param(g, "x", Shape{{kBatch, 5, 4}})}, a));
       }},
      {"batch_norm2d training", [](Graph &g) { return batchNorm(g, Shape{{kBatch, 2, 3, 2}}, 1e-5); }},
      {"batch_norm1d training", [](Graph &g) { return batchNorm(g, Shape{{kBatch, 4}}, 1e-3); }},
      {"softmax", [](Graph &g) { return unary(g, Op::Softmax, Shape{{kBatch, 4}}); }},
      {"softmax rank 3", [](Graph &g) { return unary(g, Op::Softmax, Shape{{2, 3, 5}}); }},
      {"log_softmax", [](Graph &g) { return unary(g, Op::LogSoftmax, Shape{{kBatch, 4}}); }},
      {"log_softmax large logits", [](Graph &g) { return unary(g, Op::LogSoftmax, Shape{{kBatch, 3}}); }, -30, 30},
      {"pick", [](Graph &g) {
         ValueId x = param(g, "x", Shape{{kBatch, 4}});
         return g.add(Op::Pick, {x, labels(g, Shape{{kBatch}})});
       }},
      {"scatter", [](Graph &g) {
         ValueId x = param(g, "x", Shape{{kBatch}});
         Attrs at;
         at.k = 3;
         return g.add(Op::Scatter, {x, labels(g, Shape{{kBatch}})}, at);
       }},
      {"cross entropy", [](Graph &g) {
         // -mean(pick(log_softmax(x), labels)), as sema builds it.
         ValueId x = param(g, "x", Shape{{kBatch, 3}});
         ValueId picked = g.add(Op::Pick, {g.unary(Op::LogSoftmax, x), labels(g, Shape{{kBatch}})});
         ValueId n = g.add(Op::BatchSize, {});
         return g.unary(Op::Neg, g.binary(Op::Div, g.unary(Op::Sum, picked), n));
       }, -5, 5},
      {"matmul", [](Graph &g) { return matmul(g, false, false); }},
      {"matmul transA", [](Graph &g) { return matmul(g, true, false); }},
      {"matmul transB", [](Graph &g) { return matmul(g, false, true); }},
      {"matmul transA transB", [](Graph &g) { return matmul(g, true, true); }},
      {"mean over the batch", [](Graph &g) {
         ValueId x = param(g, "x", kNx2);
         ValueId count = g.binary(Op::Mul, g.constant(2), g.add(Op::BatchSize, {}));
         return g.binary(Op::Div, g.unary(Op::Sum, x), count);
       }},
      {"multi-use value", [](Graph &g) {
         ValueId x = param(g, "x", kNx2);
         ValueId s = g.unary(Op::Sin, x);
         return g.binary(Op::Mul, g.binary(Op::Add, s, x), s);
       }},
  };
}

class GradCheck : public ::testing::TestWithParam<Case> {};

TEST_P(GradCheck, MatchesFiniteDifferences) { checkGradients(GetParam(), false); }
TEST_P(GradCheck, MatchesFiniteDifferencesAfterSimplify) { checkGradients(GetParam(), true); }

// Its value: 0 below the smallest normal f32 (2^-126), whatever the sign;
// the rest, NaN included, as it is.
TEST(FlushDenormal, ZeroesWhatIsBelowTheSmallestNormalFloat) {
  auto flush = [](double x) { return evalElementwise(Op::FlushDenormal, x, 0, {}); };
  EXPECT_EQ(flush(0x1p-127), 0.0);
  EXPECT_EQ(flush(-1e-40), 0.0);
  EXPECT_EQ(flush(0x1p-126), 0x1p-126);
  EXPECT_EQ(flush(-0x1p-126), -0x1p-126);
  EXPECT_EQ(flush(0.5), 0.5);
  EXPECT_TRUE(std::isnan(flush(std::nan(""))));
  EXPECT_TRUE(std::isinf(flush(-INFINITY)));
}

INSTANTIATE_TEST_SUITE_P(EveryOp, GradCheck, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case> &info) {
                           std::string s;
                           for (char ch : info.param.name)
                             s += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return s;
                         });

} // namespace
} // namespace netc::test
