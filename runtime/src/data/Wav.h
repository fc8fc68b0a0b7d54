// Wav.h - RIFF/WAVE files, and the audio data source.
//
// A WAVE file is "RIFF", its size, "WAVE", then chunks: a four-byte id, a
// little-endian 32-bit size, the data, and a pad byte when the size is odd.
// The "fmt " chunk gives the encoding (1: integer PCM, 3: IEEE float,
// 0xFFFE: WAVE_FORMAT_EXTENSIBLE, whose sub-format GUID starts with one of
// those two), the channel count, the sample rate and the bits per sample;
// the "data" chunk holds the frames, channels interleaved. Every other
// chunk (LIST, fact, cue, ...) is skipped. Samples become floats as
// torchaudio.load scales them: 8-bit (unsigned) (x - 128) / 128, 16-bit
// x / 2^15, 24-bit x / 2^23, 32-bit x / 2^31 (rounded to the nearest
// float; torchaudio 0.13 rounds to 24 bits first, within 2^-24 of it);
// floats as they are. Every check failure throws Error naming the file and
// what is wrong.
#pragma once

#include "Dataset.h"

#include <cstdint>
#include <string>
#include <vector>

namespace netc::rt {

struct WavAudio {
  int64_t sampleRate = 0;
  int channels = 0;
  int bits = 0;
  bool isFloat = false;
  std::vector<float> samples; ///< frames × channels, interleaved

  int64_t frames() const { return channels ? static_cast<int64_t>(samples.size()) / channels : 0; }
};

/// Reads a WAVE file from memory; `name` is only for messages.
WavAudio parseWav(const uint8_t *bytes, size_t size, const std::string &name);

/// Reads a WAVE file (at most 1 GiB).
WavAudio readWav(const std::string &path);

/// `samples` at `from` Hz resampled to `to` Hz as torchaudio 0.13's
/// functional.resample does by default: a Hann-windowed sinc low-pass
/// (6 zero crossings, cut-off 0.99 of the lower Nyquist frequency), one
/// filter per output phase of the rates' ratio reduced by their gcd, the
/// signal zero-padded at both ends, ceil(n · to / from) samples out. Throws
/// when the reduced ratio would need filters of more than 2^24 taps.
std::vector<float> resample(const std::vector<float> &samples, int64_t from, int64_t to,
                            const std::string &name);

/// One channel of `audio` (`channel` >= 0), or the mean of all of them
/// (`channel` = -1), padded with zeros or cut at the end to `length`
/// samples.
std::vector<float> monoClip(const WavAudio &audio, int channel, int64_t length,
                            const std::string &name);

/// monoClip at `rate` Hz: each channel used is resampled first (then mixed,
/// as the course does: resample, then mix down).
std::vector<float> monoClipAt(const WavAudio &audio, int channel, int64_t length, int64_t rate,
                              const std::string &name);

} // namespace netc::rt
