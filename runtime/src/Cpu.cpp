// Cpu.cpp - CPU feature check. Compiled for the baseline x86-64 CPU.
#include "Cpu.h"

#include <cstring>

namespace netc::rt {

namespace {

struct Feature {
  const char *name; // LLVM's name, as in the model description
  bool present;
};

// __builtin_cpu_supports takes literals only, hence the table. Features not
// listed here are not checked (they do not change generated code, or the
// compiler cannot test them).
std::vector<Feature> hostFeatures() {
#if defined(__x86_64__)
  __builtin_cpu_init();
#define F(name) {name, __builtin_cpu_supports(name) != 0}
  return {F("sse3"),     F("ssse3"),    F("sse4.1"),   F("sse4.2"),
          F("sse4a"),    F("popcnt"),   F("avx"),      F("avx2"),
          F("fma"),      F("fma4"),     F("bmi"),      F("bmi2"),
          F("aes"),      F("pclmul"),   F("avx512f"),  F("avx512vl"),
          F("avx512bw"), F("avx512dq"), F("avx512cd"), F("avx512vbmi"),
          F("avx512ifma"), F("avx512vbmi2"), F("avx512vnni"),
          F("avx512bitalg"), F("avx512vpopcntdq"), F("avx512bf16"),
          F("avx512fp16"), F("avx512vp2intersect"), F("avxvnni"),
          F("amx-tile"), F("amx-int8"), F("amx-bf16"),
          F("gfni"),     F("vpclmulqdq"), F("xop"),      F("tbm"),
          F("lzcnt"),    F("movbe"),    F("f16c"),     F("adx"),
          F("sha")};
#undef F
#else
  return {};
#endif
}

} // namespace

void checkCpu(const ModelInfo &model) {
  std::string missing;
  for (const Feature &f : hostFeatures()) {
    if (f.present)
      continue;
    for (const auto &needed : model.features)
      if (needed == f.name)
        missing += (missing.empty() ? "" : " ") + needed;
  }
  if (missing.empty())
    return;
  throw Error("this program was compiled for CPU '" + model.cpu +
              "' and needs CPU features this machine lacks: " + missing +
              "\n(recompile it here, or with netc --cpu=x86-64 for any x86-64 machine)");
}

} // namespace netc::rt
