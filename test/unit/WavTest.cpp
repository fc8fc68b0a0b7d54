// WavTest.cpp - the WAVE reader on every encoding sox writes (fixtures in
// wav/, made by scripts/make-wav-fixtures.sh), and on files built byte by
// byte: odd chunks to skip, and truncated or lying headers.
#include "Safetensors.h"
#include "data/Wav.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace netc::rt {
namespace {

std::string fixture(const std::string &name) { return std::string(NETC_WAV_FIXTURES) + "/" + name; }

// torchaudio.load(f)[0][:, 3] of the fixtures: torchaudio 0.13's scaling
// of each encoding, which the reader reproduces bit for bit, except for
// 32-bit integers and 64-bit floats: torchaudio (through sox) first rounds
// those to 24 bits, the reader rounds them to the nearest float (within
// 2^-24 of torchaudio's).
TEST(Wav, EveryEncodingScalesAsTorchaudio) {
  struct Case {
    const char *file;
    int bits;
    bool isFloat;
    std::vector<float> sample3; // one value per channel
    float tolerance = 0;
  } cases[] = {
      {"tone-u8.wav", 8, false, {0.4296875f}},
      {"tone-s16.wav", 16, false, {0.42919921875f}},
      {"tone-s24.wav", 24, false, {0.4292113780975342f}},
      {"tone-s32.wav", 32, false, {0.4292113184928894f}, 0x1p-24f},
      {"tone-f32.wav", 32, true, {0.4292113184928894f}},
      {"tone-f64.wav", 64, true, {0.4292113184928894f}, 0x1p-24f},
      {"stereo-s16.wav", 16, false, {0.42919921875f, 0.214599609375f}},
      {"three-s24.wav",
       24,
       false,
       {0.4292113780975342f, 0.2146056890487671f, -0.4292113780975342f}},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.file);
    WavAudio a = readWav(fixture(c.file));
    EXPECT_EQ(a.sampleRate, 8000);
    EXPECT_EQ(a.bits, c.bits);
    EXPECT_EQ(a.isFloat, c.isFloat);
    ASSERT_EQ(a.channels, static_cast<int>(c.sample3.size()));
    ASSERT_EQ(a.frames(), 400);
    for (size_t ch = 0; ch < c.sample3.size(); ++ch)
      EXPECT_NEAR(a.samples[3 * c.sample3.size() + ch], c.sample3[ch], c.tolerance);
  }
}

// Every encoding of the same tone is within its quantisation step of the
// 64-bit float original, at every sample.
TEST(Wav, EveryEncodingHoldsTheSameSignal) {
  WavAudio ref = readWav(fixture("tone-f64.wav"));
  for (auto [file, step] : {std::pair{"tone-u8.wav", 1.0 / 128},
                            {"tone-s16.wav", 1.0 / 32768},
                            {"tone-s24.wav", 1.0 / 8388608},
                            {"tone-s32.wav", 1e-7},
                            {"tone-f32.wav", 1e-7}}) {
    SCOPED_TRACE(file);
    WavAudio a = readWav(fixture(file));
    ASSERT_EQ(a.samples.size(), ref.samples.size());
    double worst = 0;
    for (size_t i = 0; i < a.samples.size(); ++i)
      worst = std::max(worst, std::abs(double(a.samples[i]) - ref.samples[i]));
    EXPECT_LE(worst, step);
    EXPECT_GT(*std::max_element(a.samples.begin(), a.samples.end()), 0.49f);
  }
}

TEST(Wav, MonoIsTheMeanOrOneChannelPaddedOrCut) {
  WavAudio a = readWav(fixture("three-s24.wav")); // tone, tone / 2, -tone
  std::vector<float> mean = monoClip(a, -1, 500, "three");
  ASSERT_EQ(mean.size(), 500u);
  for (int64_t i = 0; i < 400; ++i) {
    const float *f = a.samples.data() + 3 * i;
    EXPECT_EQ(mean[static_cast<size_t>(i)], (f[0] + f[1] + f[2]) / 3.0f);
  }
  for (size_t i = 400; i < 500; ++i)
    EXPECT_EQ(mean[i], 0.0f);
  std::vector<float> second = monoClip(a, 1, 100, "three");
  ASSERT_EQ(second.size(), 100u);
  EXPECT_EQ(second[3], a.samples[3 * 3 + 1]);
  EXPECT_THROW(monoClip(a, 3, 100, "three"), Error);
}

// Resampled as torchaudio 0.13's functional.resample (its values from
// wav/make_resampled.py): 16 kHz and 44.1 kHz stereo to 8 kHz, each channel
// then their mean, or one channel.
TEST(Wav, ResamplesAsTorchaudio) {
  auto want = readSafetensors(fixture("resampled.safetensors"));
  struct Case {
    const char *file, *tensor;
    int channel;
  } cases[] = {{"tone-16k.wav", "tone-16k", -1},
               {"tone-44k-stereo.wav", "tone-44k-stereo", -1},
               {"tone-44k-stereo.wav", "tone-44k-stereo right", 1}};
  for (const Case &c : cases) {
    SCOPED_TRACE(c.tensor);
    std::vector<float> got = monoClipAt(readWav(fixture(c.file)), c.channel, 400, 8000, c.file);
    const std::vector<float> &ref = want.at(c.tensor).data;
    ASSERT_EQ(got.size(), ref.size());
    float worst = 0, top = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::abs(got[i] - ref[i]));
      top = std::max(top, std::abs(ref[i]));
    }
    EXPECT_GT(top, 0.2f);
    // torchaudio computes its filters in float32, netc in double, and sums
    // in another order than conv1d: measured 2.7e-6 at worst.
    EXPECT_LE(worst, 1e-5f);
  }
  // The length torchaudio gives: ceil(n · to / from); no change at one rate.
  EXPECT_EQ(resample(std::vector<float>(2205, 0.1f), 44100, 8000, "x").size(), 400u);
  EXPECT_EQ(resample(std::vector<float>(7, 0.1f), 8000, 16000, "x").size(), 14u);
  EXPECT_EQ(resample({1, 2, 3}, 8000, 8000, "x"), (std::vector<float>{1, 2, 3}));
  // Rates without a large common divisor would need huge filters: refused.
  EXPECT_THROW(resample(std::vector<float>(10), 44101, 8000, "x"), Error);
}

/// A WAVE file built from chunks, for the cases no writer produces.
struct Builder {
  std::vector<uint8_t> bytes;
  void tag(const char *t) { bytes.insert(bytes.end(), t, t + 4); }
  void u16(uint32_t v) {
    for (int s = 0; s < 16; s += 8)
      bytes.push_back(static_cast<uint8_t>(v >> s));
  }
  void u32(uint32_t v) {
    u16(v & 0xFFFF);
    u16(v >> 16);
  }
  void chunk(const char *id, const std::vector<uint8_t> &body, int64_t claimed = -1) {
    tag(id);
    u32(static_cast<uint32_t>(claimed >= 0 ? claimed : static_cast<int64_t>(body.size())));
    bytes.insert(bytes.end(), body.begin(), body.end());
    if (body.size() % 2)
      bytes.push_back(0);
  }
  static std::vector<uint8_t> fmt(uint16_t format, uint16_t channels, uint32_t rate, uint16_t bits,
                                  int blockAlign = -1) {
    Builder b;
    b.u16(format);
    b.u16(channels);
    b.u32(rate);
    b.u32(rate * channels * bits / 8);
    b.u16(static_cast<uint32_t>(blockAlign >= 0 ? blockAlign : channels * bits / 8));
    b.u16(bits);
    return b.bytes;
  }
  std::vector<uint8_t> file() const {
    Builder b;
    b.tag("RIFF");
    b.u32(static_cast<uint32_t>(bytes.size() + 4));
    b.tag("WAVE");
    b.bytes.insert(b.bytes.end(), bytes.begin(), bytes.end());
    return b.bytes;
  }
};

std::string errorOf(const std::vector<uint8_t> &file) {
  try {
    parseWav(file.data(), file.size(), "x.wav");
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

TEST(Wav, SkipsOtherChunksOddOnesWithTheirPadByte) {
  Builder b;
  b.chunk("LIST", {1, 2, 3}); // odd: a pad byte follows
  b.chunk("fmt ", Builder::fmt(1, 1, 8000, 16));
  b.chunk("junk", {9});
  b.chunk("data", {0x00, 0x40, 0x00, 0xC0}); // 16384, -16384
  std::vector<uint8_t> f = b.file();
  WavAudio a = parseWav(f.data(), f.size(), "x.wav");
  ASSERT_EQ(a.samples.size(), 2u);
  EXPECT_EQ(a.samples[0], 0.5f);
  EXPECT_EQ(a.samples[1], -0.5f);
}

TEST(Wav, RefusesBrokenAndLyingFilesNamingThem) {
  struct Case {
    std::vector<uint8_t> file;
    const char *message;
  };
  std::vector<Case> cases;
  cases.push_back({{'R', 'I', 'F', 'F'}, "does not start with RIFF"});
  {
    Builder b;
    b.chunk("fmt ", Builder::fmt(1, 1, 8000, 16));
    b.chunk("data", {1, 0, 2, 0}, 4000); // says more than there is
    cases.push_back({b.file(), "data chunk says 4000 bytes"});
  }
  {
    Builder b;
    b.chunk("data", {1, 0, 2, 0});
    cases.push_back({b.file(), "no fmt chunk"});
  }
  {
    Builder b;
    b.chunk("fmt ", Builder::fmt(1, 1, 8000, 16));
    cases.push_back({b.file(), "no data chunk"});
  }
  {
    Builder b;
    b.chunk("fmt ", Builder::fmt(1, 0, 8000, 16));
    b.chunk("data", {1, 0, 2, 0});
    cases.push_back({b.file(), "no channels"});
  }
  {
    Builder b;
    b.chunk("fmt ", Builder::fmt(1, 2, 8000, 16, 2)); // block align lies
    b.chunk("data", {1, 0, 2, 0});
    cases.push_back({b.file(), "block size 2"});
  }
  {
    Builder b;
    b.chunk("fmt ", Builder::fmt(1, 1, 8000, 12));
    b.chunk("data", {1, 0, 2, 0});
    cases.push_back({b.file(), "12-bit integer"});
  }
  {
    Builder b;
    b.chunk("fmt ", Builder::fmt(2, 1, 8000, 4)); // ADPCM
    b.chunk("data", {1, 0, 2, 0});
    cases.push_back({b.file(), "encoding 2"});
  }
  {
    Builder b;
    b.chunk("fmt ", Builder::fmt(1, 1, 8000, 16));
    b.chunk("data", {1, 0, 2}); // half a frame
    cases.push_back({b.file(), "not a whole number of frames"});
  }
  {
    Builder b;
    b.chunk("fmt ", Builder::fmt(0xFFFE, 1, 8000, 16)); // extensible, but 16 bytes
    b.chunk("data", {1, 0, 2, 0});
    cases.push_back({b.file(), "fewer than 40"});
  }
  {
    Builder b;
    b.chunk("fmt ", {1, 0, 1, 0}); // too short
    b.chunk("data", {1, 0, 2, 0});
    cases.push_back({b.file(), "fewer than 16"});
  }
  for (const Case &c : cases) {
    std::string message = errorOf(c.file);
    EXPECT_NE(message.find("'x.wav'"), std::string::npos) << message;
    EXPECT_NE(message.find(c.message), std::string::npos) << message;
  }
  // Every prefix of a good file is refused or read, never a crash (the
  // sanitizer run checks the reads stay inside).
  std::vector<uint8_t> whole;
  {
    Builder b;
    b.chunk("fmt ", Builder::fmt(1, 2, 8000, 24));
    b.chunk("data", std::vector<uint8_t>(60, 7));
    whole = b.file();
  }
  for (size_t n = 0; n <= whole.size(); ++n) {
    std::vector<uint8_t> prefix(whole.begin(), whole.begin() + static_cast<ptrdiff_t>(n));
    std::string message = errorOf(prefix);
    if (n < whole.size()) {
      EXPECT_FALSE(message.empty()) << n;
    }
  }
  EXPECT_THROW(readWav(fixture("no-such.wav")), Error);
}

} // namespace
} // namespace netc::rt
