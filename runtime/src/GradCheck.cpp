// GradCheck.cpp - gradient checks in double precision.
#include "GradCheck.h"
#include "Memory.h"
#include "netc/runtime.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace netc::rt {

namespace {

int64_t rowsOf(const FieldInfo &f, int64_t n) {
  int64_t count = 1;
  for (auto d : f.shape)
    count *= d == kBatch ? n : d;
  return count;
}

/// The double-precision world: parameters, inputs and scratch as the twin
/// wants them.
class Twin {
public:
  Twin(const ModelInfo &m, const float *persist, const float *const *inputs, int64_t n,
       const float *hparams)
      : m_(m), n_(n), persist_(persist, persist + m.persistentFloats),
        grads_(static_cast<size_t>(m.persistentFloats)),
        hparams_(hparams, hparams + m.hparamCount) {
    for (size_t i = 0; i < m.fields.size(); ++i) {
      const FieldInfo &f = m.fields[i];
      if (f.dtype == "i64") { // labels pass through
        pointers_.push_back(reinterpret_cast<const double *>(inputs[i]));
        continue;
      }
      auto count = static_cast<size_t>(rowsOf(f, n));
      data_.emplace_back(inputs[i], inputs[i] + count);
      pointers_.push_back(data_.back().data());
    }
    size_t bytes =
        static_cast<size_t>(m.scratch64FixedBytes + m.scratch64BatchBytesPerN * paddedBatch(n)) +
        64;
    scratch_ = allocateScratch(bytes);
  }

  double loss() {
    return m_.code->gradients_f64(persist_.data(), pointers_.data(), scratch_.get(), n_,
                                  hparams_.data(), grads_.data());
  }
  std::vector<double> &params() { return persist_; }
  const std::vector<double> &grads() const { return grads_; }

private:
  const ModelInfo &m_;
  int64_t n_;
  std::vector<double> persist_, grads_;
  std::vector<std::vector<double>> data_;
  std::vector<const double *> pointers_;
  Aligned<char> scratch_;
  std::vector<double> hparams_; ///< the f32 step's: the same dropout key
};

/// Fourth-order central differences, error O(h^4) + O(eps |L| / h). A
/// step may straddle a kink (a ReLU flipping), which spoils that step only,
/// and small gradients drown in roundoff at small steps; so each derivative
/// is taken at four steps and judged by the one that agrees best. A wrong
/// gradient rule disagrees at every step.
constexpr double kSteps[] = {1e-3, 1e-4, 1e-5, 1e-6};
template <typename F> double difference(F f, double h) {
  return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h);
}

/// The smallest relative error of `analytic` against differences of `f`.
template <typename F> double bestError(F f, double analytic, double scale, double floor) {
  double best = INFINITY;
  for (double step : kSteps) {
    double fd = difference(f, step * scale);
    best = std::min(best, std::abs(fd - analytic) /
                              std::max({std::abs(fd), std::abs(analytic), floor, 1e-30}));
  }
  return best;
}

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

} // namespace

bool checkGradients(const ModelInfo &m, const float *persist, const float *const *inputs, int64_t n,
                    char *scratch, const float *hparams, const GradCheckOptions &o) {
  Twin twin(m, persist, inputs, n, hparams);
  twin.loss();
  std::vector<double> g64 = twin.grads();
  std::vector<float> g32(static_cast<size_t>(m.persistentFloats));
  std::vector<float> p32(persist, persist + m.persistentFloats);
  m.code->gradients(p32.data(), inputs, scratch, n, hparams, g32.data());

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
    double worstFd = 0;
    for (int64_t e = 0; e < std::min(o.entries, p.numel()); ++e) {
      draw = mix(draw);
      auto k = static_cast<size_t>(p.offset +
                                   static_cast<int64_t>(draw % static_cast<uint64_t>(p.numel())));
      double err = bestError([&](double t) { return lossAt(k, t); }, g64[k],
                             std::max(1.0, std::abs(twin.params()[k])), floor);
      worstFd = std::max(worstFd, err);
    }
    double norm = zero ? largest * std::sqrt(static_cast<double>(p.numel())) : std::sqrt(norm2);
    double single = norm > 0 ? std::sqrt(diff2) / norm : std::sqrt(diff2);
    bool pass = worstFd <= o.tolFiniteDifferences && single <= o.tolSinglePrecision;
    ok = ok && pass;
    std::printf("  %-*s  %-24.2e  %.2e%s%s\n", static_cast<int>(width), p.name.c_str(), worstFd,
                single, pass ? "" : "  FAILED",
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
  double dirErr = bestError(along, slope, 1.0, 0.0);
  bool dirOk = dirErr <= o.tolFiniteDifferences;
  ok = ok && dirOk;
  std::printf("  %-*s  %-24.2e%s\n", static_cast<int>(width), "direction", dirErr,
              dirOk ? "" : "  FAILED");
  return ok;
}

} // namespace netc::rt
