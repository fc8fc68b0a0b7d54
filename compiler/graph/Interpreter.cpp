// Interpreter.cpp - the double-precision reference semantics of every op.
#include "compiler/graph/Interpreter.h"

#include "compiler/graph/AudioTables.h"
#include "compiler/graph/Ops.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

namespace netc {

int64_t numel(const Shape &shape, int64_t batch) {
  return shape.constNumel() * (shape.hasBatch() ? batch : 1);
}

double applyElementwise(Op op, const Attrs &attrs, double a, double b) {
  return evalElementwise(op, a, b, attrs); // the op's row in Ops.cpp
}

namespace {

std::vector<int64_t> concrete(const Shape &s, int64_t batch) {
  std::vector<int64_t> d;
  for (auto x : s.dims)
    d.push_back(x == kBatch ? batch : x);
  return d;
}

/// Flat index into a tensor of shape `from`, broadcast to `to`, for the
/// multi-index `idx` of `to` (NumPy alignment: trailing dims).
int64_t broadcastIndex(const std::vector<int64_t> &from, const std::vector<int64_t> &to,
                       const std::vector<int64_t> &idx) {
  int64_t flat = 0;
  size_t offset = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i)
    flat = flat * from[i] + (from[i] == 1 ? 0 : idx[i + offset]);
  return flat;
}

std::vector<int64_t> unflatten(int64_t flat, const std::vector<int64_t> &dims) {
  std::vector<int64_t> idx(dims.size());
  for (size_t i = dims.size(); i-- > 0;) {
    idx[i] = flat % dims[i];
    flat /= dims[i];
  }
  return idx;
}

/// The window ops, as loops over [N, C, H, W]: every output position of
/// every window, in a fixed order (the reference the kernels follow).
template <typename In>
std::vector<double> window(const Graph &g, const Node &n, int64_t batch, In in) {
  bool conv = n.op == Op::Conv2d || n.op == Op::Conv2dGradInput || n.op == Op::Conv2dGradWeight;
  // The image side [N, C, H, W] and the window side [N, C', OH, OW].
  std::vector<int64_t> x, y, w;
  switch (n.op) {
  case Op::Conv2d:
  case Op::MaxPool2d:
  case Op::AvgPool2d:
  case Op::MaxPool2dIndex:
  case Op::WindowTake:
    x = concrete(g.shape(n.inputs[0]), batch);
    y = concrete(n.shape, batch);
    break;
  case Op::Conv2dGradInput:
  case Op::AvgPool2dGrad:
    x = concrete(n.attrs.shape, batch);
    y = concrete(g.shape(n.inputs[0]), batch);
    break;
  case Op::WindowTakeGrad: // offsets, dy
    x = concrete(n.attrs.shape, batch);
    y = concrete(g.shape(n.inputs[1]), batch);
    break;
  default: // Conv2dGradWeight: x, dy
    x = concrete(g.shape(n.inputs[0]), batch);
    y = concrete(g.shape(n.inputs[1]), batch);
    break;
  }
  const Shape *weightShape = nullptr;
  if (n.op == Op::Conv2d || n.op == Op::Conv2dGradInput)
    weightShape = &g.shape(n.inputs[1]);
  if (n.op == Op::Conv2dGradWeight)
    weightShape = &n.shape;
  WindowGeometry geo = windowGeometry(n.op, n.attrs, weightShape);
  if (weightShape)
    w = concrete(*weightShape, batch);
  int64_t N = x[0], C = x[1], H = x[2], W = x[3], O = y[1], OH = y[2], OW = y[3];
  auto xi = [&](int64_t b, int64_t c, int64_t h, int64_t ww) {
    return ((b * C + c) * H + h) * W + ww;
  };
  auto yi = [&](int64_t b, int64_t o, int64_t h, int64_t ww) {
    return ((b * O + o) * OH + h) * OW + ww;
  };
  auto wi = [&](int64_t o, int64_t c, int64_t h, int64_t ww) {
    return ((o * C + c) * geo.kh + h) * geo.kw + ww;
  };
  std::vector<double> r(static_cast<size_t>(numel(n.shape, batch)), 0.0);
  auto at = [](const std::vector<double> &v, int64_t i) { return v[static_cast<size_t>(i)]; };
  for (int64_t b = 0; b < N; ++b)
    for (int64_t o = 0; o < (conv ? O : C); ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = 0, best = 0;
          int64_t bestAt = -1, bestOffset = -1;
          if (n.op == Op::WindowTake || n.op == Op::WindowTakeGrad) { // the window's given element
            auto offset = static_cast<int64_t>(at(in(n.op == Op::WindowTake), yi(b, o, oh, ow)));
            int64_t ih = oh * geo.sh - geo.pt + offset / geo.kw;
            int64_t iw = ow * geo.sw - geo.pl + offset % geo.kw;
            if (n.op == Op::WindowTake)
              r[static_cast<size_t>(yi(b, o, oh, ow))] = at(in(0), xi(b, o, ih, iw));
            else
              r[static_cast<size_t>(xi(b, o, ih, iw))] += at(in(1), yi(b, o, oh, ow));
            continue;
          }
          for (int64_t c = 0; c < (conv ? C : 1); ++c)
            for (int64_t kh = 0; kh < geo.kh; ++kh)
              for (int64_t kw = 0; kw < geo.kw; ++kw) {
                int64_t ih = oh * geo.sh - geo.pt + kh, iw = ow * geo.sw - geo.pl + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                  continue;
                int64_t ch = conv ? c : o;
                switch (n.op) {
                case Op::Conv2d:
                  acc += at(in(0), xi(b, c, ih, iw)) * at(in(1), wi(o, c, kh, kw));
                  break;
                case Op::Conv2dGradInput:
                  r[static_cast<size_t>(xi(b, c, ih, iw))] +=
                      at(in(0), yi(b, o, oh, ow)) * at(in(1), wi(o, c, kh, kw));
                  break;
                case Op::Conv2dGradWeight:
                  r[static_cast<size_t>(wi(o, c, kh, kw))] +=
                      at(in(0), xi(b, c, ih, iw)) * at(in(1), yi(b, o, oh, ow));
                  break;
                case Op::MaxPool2d:
                case Op::MaxPool2dIndex: {
                  // PyTorch's rule: start at the window's first element with
                  // -inf, take a larger value or a NaN.
                  double v = at(in(0), xi(b, ch, ih, iw));
                  if (bestAt < 0) {
                    bestAt = xi(b, ch, ih, iw);
                    bestOffset = kh * geo.kw + kw;
                    best = -std::numeric_limits<double>::infinity();
                  }
                  if (v > best || std::isnan(v)) {
                    best = v;
                    bestAt = xi(b, ch, ih, iw);
                    bestOffset = kh * geo.kw + kw;
                  }
                  break;
                }
                case Op::AvgPool2d:
                  acc += at(in(0), xi(b, ch, ih, iw));
                  break;
                case Op::AvgPool2dGrad:
                  r[static_cast<size_t>(xi(b, ch, ih, iw))] +=
                      at(in(0), yi(b, o, oh, ow)) / static_cast<double>(geo.kh * geo.kw);
                  break;
                default:
                  break;
                }
              }
          if (n.op == Op::Conv2d)
            r[static_cast<size_t>(yi(b, o, oh, ow))] = acc;
          if (n.op == Op::AvgPool2d)
            r[static_cast<size_t>(yi(b, o, oh, ow))] = acc / static_cast<double>(geo.kh * geo.kw);
          if (n.op == Op::MaxPool2d)
            r[static_cast<size_t>(yi(b, o, oh, ow))] = best;
          if (n.op == Op::MaxPool2dIndex)
            r[static_cast<size_t>(yi(b, o, oh, ow))] = static_cast<double>(bestOffset);
        }
  return r;
}

} // namespace

Evaluation interpret(const Graph &g, int64_t batch,
                     const std::map<ValueId, std::vector<double>> &leaves,
                     const std::vector<double> &hparams) {
  Evaluation ev;
  auto &vals = ev.values;
  vals.resize(g.size());
  for (size_t i = 0; i < g.size(); ++i) {
    const Node &n = g.node(static_cast<ValueId>(i));
    auto out = concrete(n.shape, batch);
    int64_t count = numel(n.shape, batch);
    std::vector<double> &r = vals[i];
    auto in = [&](size_t k) -> const std::vector<double> & {
      return vals[static_cast<size_t>(n.inputs[k])];
    };
    auto inDims = [&](size_t k) { return concrete(g.shape(n.inputs[k]), batch); };
    switch (opKind(n.op)) {
    case OpKind::Leaf:
      if (n.op == Op::Const)
        r = {n.attrs.value};
      else if (n.op == Op::BatchSize)
        r = {static_cast<double>(batch)};
      else if (n.op == Op::HParam)
        r = {hparams.at(static_cast<size_t>(n.attrs.k))};
      else if (n.op == Op::Table)
        r = *n.attrs.table;
      else
        r = leaves.at(static_cast<ValueId>(i));
      assert(static_cast<int64_t>(r.size()) == count && "leaf of the wrong size");
      continue;
    case OpKind::Elementwise: {
      r.resize(static_cast<size_t>(count));
      if (n.op == Op::DropoutTrain) { // the same bits as runtime.h's
        uint64_t key = static_cast<uint64_t>(in(1)[0]) | static_cast<uint64_t>(in(2)[0]) << 24;
        double scale = 1.0 / (1.0 - n.attrs.value);
        for (int64_t e = 0; e < count; ++e) {
          uint64_t bits =
              netc_dropout_bits(key, static_cast<uint64_t>(n.attrs.k), static_cast<uint64_t>(e));
          r[static_cast<size_t>(e)] =
              bits >= dropoutThreshold(n.attrs.value) ? in(0)[static_cast<size_t>(e)] * scale : 0;
        }
        continue;
      }
      auto a = inDims(0);
      auto b = n.inputs.size() > 1 ? inDims(1) : std::vector<int64_t>{};
      for (int64_t e = 0; e < count; ++e) {
        auto idx = unflatten(e, out);
        double x = in(0)[static_cast<size_t>(broadcastIndex(a, out, idx))];
        double y =
            n.inputs.size() > 1 ? in(1)[static_cast<size_t>(broadcastIndex(b, out, idx))] : 0.0;
        r[static_cast<size_t>(e)] = applyElementwise(n.op, n.attrs, x, y);
      }
      continue;
    }
    case OpKind::Effect:
      continue;
    default:
      break;
    }
    switch (n.op) {
    case Op::Sum: {
      double s = 0;
      for (double v : in(0))
        s += v;
      r = {s};
      break;
    }
    case Op::SumTo: {
      r.assign(static_cast<size_t>(count), 0.0);
      auto src = inDims(0);
      for (size_t e = 0; e < in(0).size(); ++e) {
        auto idx = unflatten(static_cast<int64_t>(e), src);
        r[static_cast<size_t>(broadcastIndex(out, src, idx))] += in(0)[e];
      }
      break;
    }
    case Op::BroadcastTo: {
      r.resize(static_cast<size_t>(count));
      auto src = inDims(0);
      for (int64_t e = 0; e < count; ++e)
        r[static_cast<size_t>(e)] =
            in(0)[static_cast<size_t>(broadcastIndex(src, out, unflatten(e, out)))];
      break;
    }
    case Op::Reshape:
      r = in(0);
      break;
    case Op::Stack: {
      auto k = n.inputs.size();
      r.resize(static_cast<size_t>(count));
      for (size_t j = 0; j < k; ++j)
        for (size_t e = 0; e < in(j).size(); ++e)
          r[e * k + j] = in(j)[e];
      break;
    }
    case Op::Transpose: {
      // [.., R, C] -> [.., C, R]
      int64_t rows = out[out.size() - 1], cols = out[out.size() - 2];
      r.resize(static_cast<size_t>(count));
      for (int64_t m = 0; m < count / (rows * cols); ++m)
        for (int64_t i2 = 0; i2 < rows; ++i2)
          for (int64_t j = 0; j < cols; ++j)
            r[static_cast<size_t>((m * cols + j) * rows + i2)] =
                in(0)[static_cast<size_t>((m * rows + i2) * cols + j)];
      break;
    }
    case Op::Frames:
    case Op::FramesGrad: {
      // Signals of `length` samples, `frames` frames of `width` each.
      const std::vector<int64_t> &w = n.attrs.window;
      bool grad = n.op == Op::FramesGrad;
      auto sig = grad ? out : inDims(0);
      int64_t length = sig.back(), width = w[0], hop = w[1];
      int64_t frames = (length + w[2] + w[3] - width) / hop + 1;
      int64_t signals = numel(grad ? n.shape : g.shape(n.inputs[0]), batch) / length;
      r.assign(static_cast<size_t>(count), 0.0);
      for (int64_t m = 0; m < signals; ++m)
        for (int64_t t = 0; t < frames; ++t)
          for (int64_t k = 0; k < width; ++k) {
            auto x = static_cast<size_t>(m * length + reflectIndex(t * hop + k, w[2], length));
            auto f = static_cast<size_t>((m * frames + t) * width + k);
            if (grad)
              r[x] += in(0)[f];
            else
              r[f] = in(0)[x];
          }
      break;
    }
    case Op::PowerSpectrum: {
      // Directly: the windowed DFT tables, in double.
      SpectrogramSpec spec;
      spec.nFft = n.attrs.window[0];
      spec.winLength = n.attrs.window[1];
      std::vector<double> c = dftTable(spec, false), sn = dftTable(spec, true);
      int64_t width = spec.nFft, bins = spec.bins();
      int64_t rows = static_cast<int64_t>(in(0).size()) / width;
      r.assign(static_cast<size_t>(rows * bins), 0.0);
      for (int64_t row = 0; row < rows; ++row)
        for (int64_t f = 0; f < bins; ++f) {
          double re = 0, im = 0;
          for (int64_t k = 0; k < width; ++k) {
            double x = in(0)[static_cast<size_t>(row * width + k)];
            re += x * c[static_cast<size_t>(k * bins + f)];
            im += x * sn[static_cast<size_t>(k * bins + f)];
          }
          r[static_cast<size_t>(row * bins + f)] = re * re + im * im;
        }
      break;
    }
    case Op::Slice: {
      auto src = inDims(0);
      auto last = static_cast<size_t>(src.back());
      r.resize(static_cast<size_t>(count));
      for (size_t e = 0; e < r.size(); ++e)
        r[e] = in(0)[e * last + static_cast<size_t>(n.attrs.k)];
      break;
    }
    case Op::Softmax:
    case Op::LogSoftmax: {
      auto cols = static_cast<size_t>(out.back());
      r.resize(static_cast<size_t>(count));
      for (size_t row = 0; row < r.size() / cols; ++row) {
        const double *x = &in(0)[row * cols];
        double max = x[0];
        for (size_t j = 1; j < cols; ++j)
          max = std::max(max, x[j]);
        double sum = 0;
        for (size_t j = 0; j < cols; ++j)
          sum += std::exp(x[j] - max);
        for (size_t j = 0; j < cols; ++j)
          r[row * cols + j] =
              n.op == Op::Softmax ? std::exp(x[j] - max) / sum : x[j] - max - std::log(sum);
      }
      break;
    }
    case Op::Pick: {
      auto cols = static_cast<size_t>(inDims(0).back());
      r.resize(static_cast<size_t>(count));
      for (size_t i = 0; i < r.size(); ++i)
        r[i] = in(0)[i * cols + static_cast<size_t>(in(1)[i])];
      break;
    }
    case Op::Scatter: {
      auto cols = static_cast<size_t>(n.attrs.k);
      r.assign(static_cast<size_t>(count), 0.0);
      for (size_t i = 0; i < in(0).size(); ++i)
        r[i * cols + static_cast<size_t>(in(1)[i])] = in(0)[i];
      break;
    }
    case Op::Conv2d:
    case Op::Conv2dGradInput:
    case Op::Conv2dGradWeight:
    case Op::MaxPool2d:
    case Op::AvgPool2d:
    case Op::AvgPool2dGrad:
    case Op::MaxPool2dIndex:
    case Op::WindowTake:
    case Op::WindowTakeGrad:
      r = window(g, n, batch, [&](size_t k) -> const std::vector<double> & { return in(k); });
      break;
    case Op::MatMul: {
      // Operands as matrices: leading dims by the last (Ops.def).
      auto a = inDims(0), b = inDims(1);
      int64_t lda = a.back(), ldb = b.back();
      int64_t aRows = static_cast<int64_t>(in(0).size()) / lda;
      int64_t m = n.attrs.transA ? lda : aRows;
      int64_t kk = n.attrs.transA ? aRows : lda;
      int64_t nn = out.back();
      r.assign(static_cast<size_t>(m * nn), 0.0);
      for (int64_t i2 = 0; i2 < m; ++i2)
        for (int64_t j = 0; j < nn; ++j) {
          double s = 0;
          for (int64_t p = 0; p < kk; ++p) {
            double av = n.attrs.transA ? in(0)[static_cast<size_t>(p * lda + i2)]
                                       : in(0)[static_cast<size_t>(i2 * lda + p)];
            double bv = n.attrs.transB ? in(1)[static_cast<size_t>(j * ldb + p)]
                                       : in(1)[static_cast<size_t>(p * ldb + j)];
            s += av * bv;
          }
          r[static_cast<size_t>(i2 * nn + j)] = s;
        }
      break;
    }
    default:
      assert(false && "op not handled by the interpreter");
    }
  }
  return ev;
}

} // namespace netc
