// GradCheck.cpp - gradient checks in double precision.
#include "GradCheck.h"
#include "Memory.h"
#include "netc/runtime.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

namespace netc::rt {

namespace {

/// The double-precision world: parameters, inputs and scratch as the twin
/// wants them, and the branches the f32 gradients just took (left in
/// `scratch`), which it takes too (runtime.h).
class Twin {
public:
  Twin(const ModelInfo &m, const float *persist, const float *const *inputs, int64_t n,
       const char *scratch, const float *hparams)
      : m_(m), n_(n), persist_(persist, persist + m.persistentFloats),
        grads_(static_cast<size_t>(m.persistentFloats)),
        hparams_(hparams, hparams + m.hparamCount) {
    for (size_t i = 0; i < m.fields.size(); ++i) {
      const FieldInfo &f = m.fields[i];
      if (f.dtype == "i64") { // labels pass through
        pointers_.push_back(reinterpret_cast<const double *>(inputs[i]));
        continue;
      }
      auto count = static_cast<size_t>(elementsOf(f.shape, n));
      data_.emplace_back(inputs[i], inputs[i] + count);
      pointers_.push_back(data_.back().data());
    }
    for (const OutputLocation &at : m.decisions) {
      float constant = 0;
      const float *d = valuesAt(at, scratch, persist, inputs, n, constant);
      bool one = at.region == "const";
      std::vector<double> &v = data_.emplace_back(static_cast<size_t>(elementsOf(at.shape, n)));
      for (size_t j = 0; j < v.size(); ++j)
        v[j] = d[one ? 0 : j];
      pointers_.push_back(v.data());
    }
    size_t bytes =
        static_cast<size_t>(m.scratch64FixedBytes + m.scratch64BatchBytesPerN * paddedBatch(n)) +
        64;
    scratch_ = allocateScratch(bytes);
  }

  /// The loss and, in grads(), the gradients.
  double lossAndGradients() { return run(grads_.data()); }
  /// The loss alone (no backward pass): a third of the work.
  double loss() { return run(nullptr); }
  std::vector<double> &params() { return persist_; }
  const std::vector<double> &grads() const { return grads_; }

private:
  double run(double *grads) {
    return m_.code->gradients_f64(persist_.data(), pointers_.data(), scratch_.get(), n_,
                                  hparams_.data(), grads);
  }

  const ModelInfo &m_;
  int64_t n_;
  std::vector<double> persist_, grads_;
  std::vector<std::vector<double>> data_;
  std::vector<const double *> pointers_;
  Aligned<char> scratch_;
  std::vector<double> hparams_; ///< the f32 step's: the same dropout key
};

/// Fourth-order central differences, error O(h^4) + O(eps |L| / h). The
/// twin takes the f32 gradients' branches, so its loss is smooth where a
/// ReLU, max or disjoint max pooling would have a kink; a step may still
/// straddle one of another op (an overlapping max pooling), which spoils
/// that step only, and small gradients drown in roundoff at small steps;
/// so each derivative is taken at four steps and judged by the one that
/// agrees best; the first step that agrees within the tolerance, rounding
/// and all, ends the search (most entries agree at the first: a quarter of
/// the losses).
/// A wrong gradient rule disagrees at every step.
constexpr double kSteps[] = {1e-3, 1e-4, 1e-5, 1e-6};
template <typename F> double difference(F f, double h) {
  return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h);
}

/// What rounding the loss can move a difference by: its four terms' weights
/// sum to 1.5 / h, each loss off by up to 4 ulps (a batch's loss sums
/// millions of products; measured on the course CNN: under one ulp).
double roundoff(double loss, double h) {
  return 1.5 * 4 * std::numeric_limits<double>::epsilon() * std::abs(loss) / h;
}

/// How well `analytic` agrees with differences of `f` (a loss of `loss`
/// where `f` is 0), at the best-agreeing step: the relative error, and the
/// part of it that rounding cannot explain, which is what is judged.
struct Agreement {
  double error = 0, beyondRounding = 0;
  void worst(const Agreement &a) {
    error = std::max(error, a.error);
    beyondRounding = std::max(beyondRounding, a.beyondRounding);
  }
};
template <typename F>
Agreement agreement(F f, double loss, double analytic, double scale, double floor,
                    double tolerance) {
  Agreement best{INFINITY, INFINITY};
  for (double step : kSteps) {
    if (best.error <= tolerance)
      break;
    double h = step * scale;
    double fd = difference(f, h);
    double off = std::abs(fd - analytic);
    double relative = std::max({std::abs(fd), std::abs(analytic), floor, 1e-30});
    best.error = std::min(best.error, off / relative);
    best.beyondRounding =
        std::min(best.beyondRounding, std::max(0.0, off - roundoff(loss, h)) / relative);
  }
  return best;
}

/// A note for an error that only the loss's rounding takes past `tolerance`.
const char *roundingNote(const Agreement &a, double tolerance) {
  return a.error > tolerance && a.beyondRounding <= tolerance ? "  (the loss's rounding)" : "";
}

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

} // namespace

bool checkGradients(const ModelInfo &m, const float *persist, const float *const *inputs, int64_t n,
                    char *scratch, const float *hparams, const GradCheckOptions &o) {
  std::vector<float> g32(static_cast<size_t>(m.persistentFloats));
  std::vector<float> p32(persist, persist + m.persistentFloats);
  m.code->gradients(p32.data(), inputs, scratch, n, hparams, g32.data());
  Twin twin(m, p32.data(), inputs, n, scratch, hparams);
  double loss = twin.lossAndGradients();
  std::vector<double> g64 = twin.grads();

  auto lossAt = [&](size_t k, double delta) {
    double saved = twin.params()[k];
    twin.params()[k] = saved + delta;
    double l = twin.loss();
    twin.params()[k] = saved;
    return l;
  };
  bool ok = true;
  size_t width = 9;
  for (const auto &p : m.params)
    width = std::max(width, p.name.size());
  std::printf("  %-*s  %-24s  %s\n", static_cast<int>(width), "tensor", "f64 vs differences",
              "f32 vs f64");
  uint64_t draw = mix(o.seed + 0x9e3779b97f4a7c15ULL);
  double largest = 0; // the model's largest gradient
  for (const auto &p : m.params)
    for (int64_t i = 0; i < p.numel(); ++i)
      largest = std::max(largest, std::abs(g64[static_cast<size_t>(p.offset + i)]));
  for (const auto &p : m.params) {
    double scale = 0, diff2 = 0, norm2 = 0;
    for (int64_t i = 0; i < p.numel(); ++i) {
      auto k = static_cast<size_t>(p.offset + i);
      scale = std::max(scale, std::abs(g64[k]));
      diff2 += (static_cast<double>(g32[k]) - g64[k]) * (static_cast<double>(g32[k]) - g64[k]);
      norm2 += g64[k] * g64[k];
    }
    // A gradient that is zero up to roundoff (a bias before batch norm,
    // which the normalisation removes) is judged against the model's
    // largest gradient: relative to itself, it is all noise.
    bool zero = scale <= 1e-10 * largest;
    double floor = zero ? largest : 1e-6 * scale;
    Agreement worst;
    for (int64_t e = 0; e < std::min(o.entries, p.numel()); ++e) {
      draw = mix(draw);
      auto k = static_cast<size_t>(p.offset +
                                   static_cast<int64_t>(draw % static_cast<uint64_t>(p.numel())));
      worst.worst(agreement([&](double t) { return lossAt(k, t); }, loss, g64[k],
                            std::max(1.0, std::abs(twin.params()[k])), floor,
                            o.tolFiniteDifferences));
    }
    double norm = zero ? largest * std::sqrt(static_cast<double>(p.numel())) : std::sqrt(norm2);
    double single = norm > 0 ? std::sqrt(diff2) / norm : std::sqrt(diff2);
    bool pass = worst.beyondRounding <= o.tolFiniteDifferences && single <= o.tolSinglePrecision;
    ok = ok && pass;
    std::printf("  %-*s  %-24.2e  %.2e%s%s%s\n", static_cast<int>(width), p.name.c_str(),
                worst.error, single, pass ? "" : "  FAILED",
                roundingNote(worst, o.tolFiniteDifferences),
                zero ? "  (gradient zero: judged against the largest)" : "");
  }
  // One random direction over all parameters at once.
  std::vector<double> dir(g64.size(), 0.0);
  double dirNorm = 0, slope = 0;
  for (const auto &p : m.params)
    for (int64_t i = 0; i < p.numel(); ++i) {
      draw = mix(draw);
      double u = static_cast<double>(draw >> 11) * 0x1.0p-53 - 0.5;
      dir[static_cast<size_t>(p.offset + i)] = u;
      dirNorm += u * u;
    }
  dirNorm = std::sqrt(dirNorm);
  for (size_t k = 0; k < dir.size(); ++k) {
    dir[k] /= dirNorm;
    slope += dir[k] * g64[k];
  }
  auto along = [&](double t) {
    std::vector<double> saved = twin.params();
    for (size_t k = 0; k < dir.size(); ++k)
      twin.params()[k] += t * dir[k];
    double l = twin.loss();
    twin.params() = saved;
    return l;
  };
  Agreement direction = agreement(along, loss, slope, 1.0, 0.0, o.tolFiniteDifferences);
  bool dirOk = direction.beyondRounding <= o.tolFiniteDifferences;
  ok = ok && dirOk;
  std::printf("  %-*s  %-24.2e%s%s\n", static_cast<int>(width), "direction", direction.error,
              dirOk ? "" : "  FAILED", roundingNote(direction, o.tolFiniteDifferences));
  return ok;
}

} // namespace netc::rt
