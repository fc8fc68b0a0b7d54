// Jit.cpp - see Jit.h.
//
// The JIT links the very object file the ahead-of-time path writes (the same
// optimized module, the same TargetMachine, the same machine code), so a
// run is the linked program's bit for bit; ORC only places it in memory
// and resolves its symbols. The runtime's entry points come from netc itself
// (absolute symbols: netc need not export its symbols), everything else
// (memcpy, expf, ...) from the libraries the process has loaded.
#include "compiler/driver/Jit.h"

#include <netc/runtime.h>

#include <fmt/format.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/Support/MemoryBuffer.h>

#include <iostream>

namespace netc {

namespace {

int fail(llvm::Error error) {
  std::cerr << "netc: error: " << llvm::toString(std::move(error)) << '\n';
  return 1;
}

/// The runtime's functions (and the profiling switch) generated code uses,
/// as this process has them.
llvm::orc::SymbolMap runtimeSymbols(llvm::orc::LLJIT &jit) {
  llvm::orc::SymbolMap symbols;
  auto define = [&](const char *name, auto *address) {
    symbols[jit.mangleAndIntern(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                                          llvm::JITSymbolFlags::Exported |
                                              llvm::JITSymbolFlags::Callable};
  };
  define("netc_rt_parallel_for", &netc_rt_parallel_for);
  define("netc_rt_normal", &netc_rt_normal);
  define("netc_rt_uniform", &netc_rt_uniform);
  define("netc_rt_profile_mark", &netc_rt_profile_mark);
  symbols[jit.mangleAndIntern("netc_rt_profiling")] = {
      llvm::orc::ExecutorAddr::fromPtr(&netc_rt_profiling), llvm::JITSymbolFlags::Exported};
  return symbols;
}

} // namespace

int runObject(const std::string &object, const std::string &symbol,
              const std::vector<std::string> &args) {
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit)
    return fail(jit.takeError());
  llvm::orc::JITDylib &main = (*jit)->getMainJITDylib();
  if (auto err = main.define(llvm::orc::absoluteSymbols(runtimeSymbols(**jit))))
    return fail(std::move(err));
  auto process = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      (*jit)->getDataLayout().getGlobalPrefix());
  if (!process)
    return fail(process.takeError());
  main.addGenerator(std::move(*process));
  auto buffer = llvm::MemoryBuffer::getMemBufferCopy(object, symbol + ".o");
  if (auto err = (*jit)->addObjectFile(std::move(buffer)))
    return fail(std::move(err));
  auto descriptor = (*jit)->lookup(symbol);
  if (!descriptor)
    return fail(descriptor.takeError());

  std::vector<std::string> storage(args);
  std::vector<char *> argv;
  for (std::string &a : storage)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  return netc_main(descriptor->toPtr<const netc_model *>(), static_cast<int>(storage.size()),
                   argv.data());
}

} // namespace netc
