// ReadersFuzzTarget.cpp - libFuzzer entry point for the runtime's file
// readers that take paths: the first byte picks IDX (plain or gzipped) or
// safetensors, the rest is the file. Any bytes must be read or refused with
// an Error, never crash, hang or allocate what the file does not hold.
// Built as a fuzzer with NETC_FUZZ=ON (scripts/fuzz.sh SECONDS readers),
// and linked into netc_readers_fuzz_replay, which the test suite runs over
// readers-corpus/ (scripts/make-readers-corpus.py).
#include "Safetensors.h"
#include "data/Idx.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  static const std::string path =
      "/tmp/netc-readers-fuzz-" + std::to_string(static_cast<long>(::getpid()));
  if (FILE *f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data + 1, 1, size - 1, f);
    std::fclose(f);
  } else {
    return 0;
  }
  try {
    if (data[0] % 2 == 0)
      netc::rt::readIdx(path);
    else
      netc::rt::readSafetensors(path);
  } catch (const netc::rt::Error &) {
  }
  std::remove(path.c_str());
  return 0;
}
