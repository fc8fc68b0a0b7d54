// FuzzTarget.cpp - libFuzzer entry point: parse, check and run the middle
// end (everything but LLVM) on arbitrary bytes. Any crash, assertion,
// sanitizer report or hang is a bug: user input must only ever produce
// diagnostics.
//
// Built as a fuzzer with NETC_FUZZ=ON (scripts/fuzz.sh), and linked into
// netc_fuzz_replay, which the normal test suite runs over the corpus.
#include "compiler/sema/Sema.h"
#include "compiler/transforms/Pipeline.h"
#include "dsl/Parser.h"

#include <cstddef>
#include <cstdint>
#include <sstream>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  netc::SourceFile file("fuzz.nn", std::move(text));
  std::ostringstream sink;
  netc::DiagnosticEngine diags(file, sink);
  netc::ast::Program program = netc::parseProgram(file, diags);
  if (diags.hasErrors())
    return 0;
  auto model = netc::checkProgram(program, "fuzz", diags);
  if (!model)
    return 0;
  std::ostringstream dump;
  netc::runPipeline(std::move(*model), netc::Stage::Plan, dump, diags);
  return 0;
}
