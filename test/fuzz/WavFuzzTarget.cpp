// WavFuzzTarget.cpp - libFuzzer entry point for the runtime's WAVE reader:
// any bytes must give audio or an Error naming the file, never a crash, a
// sanitizer report or a read outside the buffer. Built as a fuzzer with
// NETC_FUZZ=ON (scripts/fuzz.sh wav), and linked into
// netc_wav_fuzz_replay, which the test suite runs over wav-corpus/.
#include "data/Wav.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    netc::rt::WavAudio a = netc::rt::parseWav(data, size, "fuzz.wav");
    // Mixing and fitting read every sample the header promised.
    netc::rt::monoClip(a, -1, 64, "fuzz.wav");
  } catch (const netc::rt::Error &) {
  }
  return 0;
}
