// ReadersFuzzTarget.cpp - libFuzzer entry point for the runtime's file
// readers that take paths: the first byte picks IDX (plain or gzipped),
// safetensors (the trainer's reader, then the C library's weights loader of
// runtime/core/Weights.c on a small model) or a CSV table (then its options: a header line or not, comma
// or blank separated, a class or a numeric target), the rest is the file. Any bytes must be read or
// refused with an Error, never crash, hang or allocate what the file does not hold. Built as a
// fuzzer with NETC_FUZZ=ON (scripts/fuzz.sh SECONDS readers), and linked into
// netc_readers_fuzz_replay, which the test suite runs over readers-corpus/
// (scripts/make-readers-corpus.py).
#include "Core.h"
#include "Safetensors.h"
#include "data/Idx.h"
#include "data/Sources.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace {

/// A model on a csv table: x f32[N, 3] from the other columns, y from the
/// last: 3 classes, or a number; options from the selector byte's bits.
netc::rt::ModelInfo csvModel(uint8_t selector) {
  netc::rt::ModelInfo m;
  bool classes = selector & 8;
  m.dataSource = "csv";
  m.dataNumbers = {{"skip", (selector >> 4) & 1},
                   {"header", (selector >> 5) & 1},
                   {"batch", 4},
                   {"test", 0},
                   {"split_seed", 0}};
  m.dataTexts = {{"delimiter", selector & 64 ? " " : ","},
                 {"inputs", selector & 128 ? "0:3" : ""},
                 {"target", ""},
                 {"target_file", ""},
                 {"test_file", ""},
                 {"test_target_file", ""}};
  m.fields = {{"x", "input", "f32", {netc::rt::kBatch, 3}},
              {"y", "target", classes ? "i64" : "f32", {netc::rt::kBatch}}};
  if (classes) {
    m.prediction.present = true;
    m.prediction.kind = "logits";
    m.prediction.classes = 3;
    m.prediction.width = 3;
    m.prediction.target = 1;
  }
  return m;
}

/// A model for the C weights loader: w f32[2, 3], b f32[3] (the names the
/// corpus's safetensors seeds use) and a count kept as I64.
const netc_model &weightsModel() {
  static const int64_t wShape[] = {2, 3}, bShape[] = {3};
  static const netc_tensor tensors[] = {
      {"w", wShape, 2, NETC_PARAMETER, 0, 6, 0},
      {"b", bShape, 1, NETC_PARAMETER, 16, 3, 0},
      {"n", nullptr, 0, NETC_BUFFER, 32, 1, 1},
      {"optim.w.exp_avg", wShape, 2, NETC_STATE, 48, 6, 0}};
  static netc_model m = [] {
    netc_model model{};
    model.abi = NETC_ABI_VERSION;
    model.name = "fuzz";
    model.persistent_floats = 64;
    model.tensor_count = 4;
    model.tensors = tensors;
    return model;
  }();
  return m;
}

/// Loads `path` with the C library's loader; it must refuse or succeed
/// without touching memory outside the 64 floats.
void loadWeightsInC(const std::string &path) {
  float persist[64] = {};
  char error[512];
  netc_weights_load(&weightsModel(), persist, path.c_str(), error, sizeof error);
}

} // namespace

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
    switch (data[0] % 3) {
    case 0:
      netc::rt::readIdx(path);
      break;
    case 1:
      loadWeightsInC(path);
      netc::rt::readSafetensors(path);
      break;
    default:
      netc::rt::openCsv(csvModel(data[0]), path);
      break;
    }
  } catch (const netc::rt::Error &) {
  }
  std::remove(path.c_str());
  return 0;
}
