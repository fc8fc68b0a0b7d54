// AudioTables.h - the constant matrices of the spectrogram layers, computed
// as torchaudio 0.13 defines them (in double precision).
//
// A spectrogram is frames · (window-weighted DFT), a mel spectrogram that
// times a filterbank: the matrices here are those constant operands, so
// the compiled program runs them through its GEMM code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace netc {

/// torchaudio.transforms.Spectrogram / MelSpectrogram parameters, by
/// torchaudio's names (0 for "default" where torchaudio says None).
struct SpectrogramSpec {
  double sampleRate = 16000;
  int64_t nFft = 400;
  int64_t winLength = 0; ///< 0: n_fft
  int64_t hopLength = 0; ///< 0: win_length / 2
  double fMin = 0;
  double fMax = 0; ///< 0: sample_rate / 2
  int64_t nMels = 128;
  double power = 2;
  bool center = true;
  bool slaneyNorm = false;  ///< norm = "slaney"
  bool slaneyScale = false; ///< mel_scale = "slaney" (else "htk")

  int64_t win() const { return winLength ? winLength : nFft; }
  int64_t hop() const { return hopLength ? hopLength : win() / 2; }
  double top() const { return fMax > 0 ? fMax : sampleRate / 2; }
  int64_t bins() const { return nFft / 2 + 1; } ///< one-sided frequencies
};

/// torch.hann_window(win_length, periodic=True) zero-padded to n_fft as
/// torch.stft pads it ((n_fft - win_length) / 2 zeros first): [n_fft].
std::vector<double> hannWindow(const SpectrogramSpec &s);

/// The real (cos) or imaginary (-sin) part of the one-sided DFT of a frame
/// weighted by the periodic Hann window of win_length samples, centred in
/// n_fft (torch.stft with torch.hann_window): [n_fft, n_fft / 2 + 1],
/// row-major.
std::vector<double> dftTable(const SpectrogramSpec &s, bool imaginary);

/// torchaudio.functional.melscale_fbanks: [n_fft / 2 + 1, n_mels].
std::vector<double> melTable(const SpectrogramSpec &s);

/// What a table holds, as its name: tables of one name are equal.
std::string dftTableName(const SpectrogramSpec &s, bool imaginary);
std::string melTableName(const SpectrogramSpec &s);

} // namespace netc
