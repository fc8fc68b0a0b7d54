// AudioTables.cpp - Hann-weighted DFT matrices and mel filterbanks.
#include "compiler/graph/AudioTables.h"

#include <fmt/format.h>

#include <cmath>

namespace netc {

namespace {

constexpr double kPi = 3.14159265358979323846;

// HTK: 2595 log10(1 + f / 700). Slaney: linear below 1 kHz (200/3 Hz per
// mel), logarithmic above (27 mels per factor 6.4), as librosa and
// torchaudio define it.
constexpr double kSlaneyStep = 200.0 / 3, kSlaneyKnee = 1000.0, kSlaneyKneeMel = 15.0;
const double kSlaneyLogStep = std::log(6.4) / 27.0;

double hzToMel(double f, bool slaney) {
  if (!slaney)
    return 2595.0 * std::log10(1.0 + f / 700.0);
  if (f < kSlaneyKnee)
    return f / kSlaneyStep;
  return kSlaneyKneeMel + std::log(f / kSlaneyKnee) / kSlaneyLogStep;
}

double melToHz(double m, bool slaney) {
  if (!slaney)
    return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0);
  if (m < kSlaneyKneeMel)
    return m * kSlaneyStep;
  return kSlaneyKnee * std::exp(kSlaneyLogStep * (m - kSlaneyKneeMel));
}

/// torch.linspace(from, to, steps) at i, in double.
double linspace(double from, double to, int64_t steps, int64_t i) {
  return steps == 1 ? from : from + (to - from) * static_cast<double>(i) / (steps - 1);
}

} // namespace

std::vector<double> hannWindow(const SpectrogramSpec &s) {
  int64_t n = s.nFft, win = s.win(), offset = (n - win) / 2;
  std::vector<double> w(static_cast<size_t>(n), 0.0);
  for (int64_t k = 0; k < win; ++k)
    w[static_cast<size_t>(k + offset)] =
        0.5 - 0.5 * std::cos(2 * kPi * static_cast<double>(k) / static_cast<double>(win));
  return w;
}

std::vector<double> dftTable(const SpectrogramSpec &s, bool imaginary) {
  int64_t n = s.nFft, bins = s.bins();
  std::vector<double> window = hannWindow(s);
  std::vector<double> t(static_cast<size_t>(n * bins), 0.0);
  for (int64_t at = 0; at < n; ++at) {
    double w = window[static_cast<size_t>(at)];
    if (w == 0)
      continue;
    for (int64_t f = 0; f < bins; ++f) {
      // The angle from (at · f) mod n: exact for any size.
      double angle = 2 * kPi * static_cast<double>((at * f) % n) / static_cast<double>(n);
      t[static_cast<size_t>(at * bins + f)] =
          imaginary ? -w * std::sin(angle) : w * std::cos(angle);
    }
  }
  return t;
}

std::vector<double> melTable(const SpectrogramSpec &s) {
  int64_t bins = s.bins(), mels = s.nMels;
  double mMin = hzToMel(s.fMin, s.slaneyScale), mMax = hzToMel(s.top(), s.slaneyScale);
  std::vector<double> points(static_cast<size_t>(mels + 2));
  for (int64_t i = 0; i < mels + 2; ++i)
    points[static_cast<size_t>(i)] = melToHz(linspace(mMin, mMax, mels + 2, i), s.slaneyScale);
  // Frequencies of the bins: torch.linspace(0, sample_rate // 2, bins).
  double nyquist = std::floor(s.sampleRate / 2);
  std::vector<double> t(static_cast<size_t>(bins * mels));
  for (int64_t f = 0; f < bins; ++f) {
    double hz = linspace(0, nyquist, bins, f);
    for (int64_t m = 0; m < mels; ++m) {
      auto p = [&](int64_t i) { return points[static_cast<size_t>(i)]; };
      double down = (hz - p(m)) / (p(m + 1) - p(m));
      double up = (p(m + 2) - hz) / (p(m + 2) - p(m + 1));
      double v = std::max(0.0, std::min(down, up));
      if (s.slaneyNorm)
        v *= 2.0 / (p(m + 2) - p(m));
      t[static_cast<size_t>(f * mels + m)] = v;
    }
  }
  return t;
}

std::string dftTableName(const SpectrogramSpec &s, bool imaginary) {
  return fmt::format("dft_{}(n_fft {}, hann {})", imaginary ? "imag" : "real", s.nFft, s.win());
}

std::string melTableName(const SpectrogramSpec &s) {
  return fmt::format("mel_filters({} bins, {} mels, {} Hz, {}-{} Hz, {}{})", s.bins(), s.nMels,
                     s.sampleRate, s.fMin, s.top(), s.slaneyScale ? "slaney" : "htk",
                     s.slaneyNorm ? ", slaney norm" : "");
}

} // namespace netc
