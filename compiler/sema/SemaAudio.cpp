// SemaAudio.cpp - the spectrogram layers: torchaudio's Spectrogram and
// MelSpectrogram as graph ops (frames, products with constant tables,
// the power, a transpose), so --emit shows them, the GEMM code runs them
// and gradients flow through them.
#include "compiler/sema/SemaImpl.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>

namespace netc::sema {

std::optional<Layer> Sema::spectrogramLayer(const ast::LayerRef &ref, Layer layer) {
  if (ref.name == "amplitude_to_db")
    return decibelLayer(ref, std::move(layer));
  bool mel = ref.name == "mel_spectrogram";
  std::vector<std::string> names =
      mel ? std::vector<std::string>{"sample_rate", "n_fft", "win_length", "hop_length",
                                     "f_min",       "f_max", "n_mels",     "power",
                                     "center",      "norm",  "mel_scale"}
          : std::vector<std::string>{"n_fft", "win_length", "hop_length", "power", "center"};
  bool ok = true;
  auto slots = matchArgs(ref.args, names, ref.name, "argument",
                         fmt::format("'{}' takes at most {}: {}", ref.name,
                                     counted(names.size(), "argument"), layer.row->usage),
                         ok);
  if (!slots || !ok)
    return std::nullopt;
  SpectrogramSpec &s = layer.spectrogram;
  for (size_t i = 0; i < ref.args.size(); ++i) {
    const std::string &name = names[(*slots)[i]];
    const ast::Arg &a = ref.args[i];
    if (name == "norm" || name == "mel_scale") {
      const auto *text = boost::get<ast::StringLit>(&a.value);
      std::string want = name == "norm" ? "\"none\" or \"slaney\"" : "\"htk\" or \"slaney\"";
      if (!text || (text->text != "slaney" && text->text != (name == "norm" ? "none" : "htk"))) {
        diags_.error(a.loc, fmt::format("{} is {}", name, want));
        return std::nullopt;
      }
      (name == "norm" ? s.slaneyNorm : s.slaneyScale) = text->text == "slaney";
      continue;
    }
    auto v = constValue(a.value, /*quiet=*/false);
    if (!v)
      return std::nullopt;
    auto whole = [&](int64_t lo, int64_t hi) -> std::optional<int64_t> {
      if (*v >= static_cast<double>(lo) && *v <= static_cast<double>(hi) && *v == std::floor(*v))
        return static_cast<int64_t>(*v);
      diags_.error(a.loc, fmt::format("{} must be a whole number from {} to {}", name, lo, hi));
      return std::nullopt;
    };
    auto positive = [&]() {
      if (std::isfinite(*v) && *v > 0 && *v <= 1e7)
        return true;
      diags_.error(a.loc, fmt::format("{} must be a positive number of Hz (at most 1e7)", name));
      return false;
    };
    std::optional<int64_t> n;
    if (name == "sample_rate") {
      if (!positive())
        return std::nullopt;
      s.sampleRate = *v;
    } else if (name == "f_min" || name == "f_max") {
      if (!(std::isfinite(*v) && *v >= 0 && *v <= 1e7)) {
        diags_.error(a.loc, fmt::format("{} must be a frequency from 0 to 1e7 Hz", name));
        return std::nullopt;
      }
      (name == "f_min" ? s.fMin : s.fMax) = *v;
    } else if (name == "power") {
      if (!(*v == 1 || *v == 2)) {
        diags_.error(a.loc, "power is 2 (the power spectrum) or 1 (the magnitude)");
        return std::nullopt;
      }
      s.power = *v;
    } else if (name == "center") {
      if (!(*v == 0 || *v == 1)) {
        diags_.error(a.loc, "center is true or false");
        return std::nullopt;
      }
      s.center = *v == 1;
    } else if (!(n = whole(name == "n_fft" ? 2 : 1, 1 << 16))) {
      return std::nullopt;
    } else if (name == "n_fft") {
      s.nFft = *n;
    } else if (name == "win_length") {
      s.winLength = *n;
    } else if (name == "hop_length") {
      s.hopLength = *n;
    } else {
      s.nMels = *n;
    }
  }
  // An FFT's workspace grows with n_fft, the DFT tables (other sizes, and
  // the gradient) with its square: 16384 and 4096 keep both within reach.
  bool fft = std::has_single_bit(static_cast<uint64_t>(s.nFft));
  if (s.nFft > (fft ? 16384 : 4096)) {
    diags_.error(ref.loc, fmt::format("{}: n_fft {} is too large; at most 16384 for a power of "
                                      "two (an FFT), else 4096",
                                      ref.name, s.nFft));
    return std::nullopt;
  }
  if (s.win() > s.nFft) {
    diags_.error(ref.loc, fmt::format("{}: win_length {} is longer than n_fft {}", ref.name,
                                      s.win(), s.nFft));
    return std::nullopt;
  }
  if (s.hop() < 1) {
    diags_.error(ref.loc, fmt::format("{}: hop_length must be at least 1", ref.name));
    return std::nullopt;
  }
  if (mel && !(s.fMin < s.top() && s.top() <= s.sampleRate / 2)) {
    diags_.error(ref.loc, fmt::format("mel_spectrogram needs f_min < f_max <= sample_rate / 2 "
                                      "({} Hz), got {} and {}",
                                      s.sampleRate / 2, s.fMin, s.top()));
    return std::nullopt;
  }
  if (!mel)
    s.nMels = 0;
  return layer;
}

// amplitude_to_db(stype = "power"): torchaudio's AmplitudeToDB with its
// defaults (ref 1, amin 1e-10): 10 log10(max(x, 1e-10)), 20 for "magnitude".
// Its top_db (a clamp below each spectrogram's maximum) is not offered.
std::optional<Layer> Sema::decibelLayer(const ast::LayerRef &ref, Layer layer) {
  bool ok = true;
  auto slots =
      matchArgs(ref.args, {"stype"}, ref.name, "argument",
                fmt::format("'{}' takes at most one argument: {}", ref.name, layer.row->usage), ok);
  if (!slots || !ok)
    return std::nullopt;
  layer.args = {10.0};
  if (!ref.args.empty()) {
    const auto *text = boost::get<ast::StringLit>(&ref.args[0].value);
    if (!text || (text->text != "power" && text->text != "magnitude")) {
      diags_.error(ref.args[0].loc, "stype is \"power\" or \"magnitude\"");
      return std::nullopt;
    }
    layer.args = {text->text == "power" ? 10.0 : 20.0};
  }
  return layer;
}

ValueId Sema::applySpectrogram(const Layer &l, ValueId x, ast::Loc loc) {
  if (l.kind == "amplitude_to_db") {
    Graph &g = model_.graph;
    ValueId floor = g.constant(1e-10, l.loc);
    ValueId clamped = node(Op::Max, {x, floor}, {}, l.loc);
    ValueId scale = g.constant(l.args[0] / std::log(10.0), l.loc);
    return node(Op::Mul, {node(Op::Log, {clamped}, {}, l.loc), scale}, {}, l.loc);
  }
  const SpectrogramSpec &s = l.spectrogram;
  // The mel filterbank assumes the clips' rate: another one shifts every band.
  if (auto rate = model_.data.numbers.find("sample_rate");
      l.kind == "mel_spectrogram" && model_.data.source == "audio" &&
      rate != model_.data.numbers.end() && rate->second != s.sampleRate)
    diags_.warning(l.loc, fmt::format("mel_spectrogram's sample_rate is {} Hz, but the audio data "
                                      "is read at {} Hz: its mel bands will be at the wrong "
                                      "frequencies",
                                      s.sampleRate, rate->second));
  Shape in = model_.graph.shape(x);
  if (in.rank() == 0 || in.dims.back() == kBatch) {
    layerError(l, loc,
               fmt::format("{} takes signals along the last axis, got {}", l.kind, in.str()));
    return kNoValue;
  }
  int64_t length = in.dims.back(), pad = s.center ? s.nFft / 2 : 0;
  if (s.center && pad >= length) {
    layerError(l, loc,
               fmt::format("{}: center pads each side by n_fft / 2 = {} samples, reflecting "
                           "the signal, which needs signals longer than that (got {})",
                           l.kind, pad, length));
    return kNoValue;
  }
  if (length + 2 * pad < s.nFft) {
    layerError(
        l, loc,
        fmt::format("{}: signals of {} samples are shorter than n_fft {}", l.kind, length, s.nFft));
    return kNoValue;
  }
  auto table = [&](std::string name, std::vector<double> values, Shape shape) {
    return model_.graph.table(std::move(name), std::move(shape), std::move(values), l.loc);
  };
  Attrs framing;
  framing.window = {s.nFft, s.hop(), pad, pad};
  ValueId frames = node(Op::Frames, {x}, framing, l.loc);
  ValueId power;
  if (std::has_single_bit(static_cast<uint64_t>(s.nFft))) {
    // n_fft a power of two: an FFT (SpectrumKernel.cpp). Measured on the
    // spoken-digits front end: 2x the DFT products' speed and more.
    Attrs spectrum;
    spectrum.window = {s.nFft, s.win()};
    power = node(Op::PowerSpectrum, {frames}, spectrum, l.loc);
  } else {
    // Otherwise the one-sided DFT as two products with constant tables.
    Shape dft{{s.nFft, s.bins()}};
    ValueId re = node(Op::MatMul, {frames, table(dftTableName(s, false), dftTable(s, false), dft)},
                      {}, l.loc);
    ValueId im =
        node(Op::MatMul, {frames, table(dftTableName(s, true), dftTable(s, true), dft)}, {}, l.loc);
    power = node(Op::Add, {node(Op::Mul, {re, re}, {}, l.loc), node(Op::Mul, {im, im}, {}, l.loc)},
                 {}, l.loc);
  }
  if (s.power == 1)
    power = node(Op::Sqrt, {power}, {}, l.loc);
  if (s.nMels > 0)
    power =
        node(Op::MatMul, {power, table(melTableName(s), melTable(s), Shape{{s.bins(), s.nMels}})},
             {}, l.loc);
  return node(Op::Transpose, {power}, {}, l.loc);
}

} // namespace netc::sema
