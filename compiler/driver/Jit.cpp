// Jit.cpp - see Jit.h.
//
// Each part of the module (Parallel.h) is optimized and compiled to an
// object exactly as the ahead-of-time path compiles it, so a run is the
// linked program's bit for bit; ORC only places the objects in memory and
// resolves their symbols. The runtime's entry points come from netc itself
// (absolute symbols: netc need not export its symbols), everything else
// (memcpy, expf, ...) from the libraries the process has loaded.
//
// The descriptor holds the addresses of every entry point, but only init
// and train_step are needed to start training: the others are bound to
// trampolines that wait until a background thread has compiled the real
// ones, then link them into a second JITDylib.
#include "compiler/driver/Jit.h"

#include "compiler/codegen/Codegen.h"
#include "compiler/codegen/Parallel.h"

#include <netc/runtime.h>

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/Support/MemoryBuffer.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace netc {

namespace {

int fail(llvm::Error error) {
  std::cerr << "netc: error: " << llvm::toString(std::move(error)) << '\n';
  return 1;
}

/// Seconds since this process started (from /proc: the start time in clock
/// ticks since boot, against the uptime), so that --timings counts the
/// loading of netc and its libraries too; -1 where /proc is not there.
double secondsSinceLaunch() {
  std::ifstream stat("/proc/self/stat"), uptime("/proc/uptime");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  double up = 0;
  if (close == std::string::npos || !(uptime >> up))
    return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22)
      return up - std::stod(field) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return -1;
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
  define("netc_rt_chunk_slot", &netc_rt_chunk_slot);
  define("netc_rt_normal", &netc_rt_normal);
  define("netc_rt_uniform", &netc_rt_uniform);
  define("netc_rt_profile_mark", &netc_rt_profile_mark);
  symbols[jit.mangleAndIntern("netc_rt_profiling")] = {
      llvm::orc::ExecutorAddr::fromPtr(&netc_rt_profiling), llvm::JITSymbolFlags::Exported};
  return symbols;
}

/// The entry points compiled in the background, and who waits for them.
/// The background thread only compiles; the objects are linked into the
/// JIT by the first call that needs them, on the trainer's thread, so that
/// ORC never links while generated code runs.
struct Later {
  std::mutex lock;
  std::condition_variable ready;
  bool done = false;   ///< compiled (or failed)
  bool linked = false; ///< link() has run
  std::string error;
  std::function<std::string()> link; ///< links the objects, binds the pointers
  decltype(netc_model::forward) forward = nullptr;
  decltype(netc_model::predict) predict = nullptr;
  decltype(netc_model::gradients) gradients = nullptr;
  decltype(netc_model::gradients_f64) gradients64 = nullptr;
  decltype(netc_model::probe) probe = nullptr;

  /// Blocks until the background compile ended and links its objects; a
  /// failure ends netc.
  Later &wait() {
    std::unique_lock<std::mutex> l(lock);
    ready.wait(l, [&] { return done; });
    if (error.empty() && !linked) {
      linked = true;
      error = link();
    }
    if (!error.empty()) {
      std::fflush(stdout);
      std::fprintf(stderr, "netc: error: %s\n", error.c_str());
      _exit(1);
    }
    return *this;
  }
};
Later later;

float forwardLater(float *p, const float *const *in, char *s, int64_t n, const float *h) {
  return later.wait().forward(p, in, s, n, h);
}
void predictLater(float *p, const float *const *in, char *s, int64_t n, float *out) {
  later.wait().predict(p, in, s, n, out);
}
float gradientsLater(float *p, const float *const *in, char *s, int64_t n, const float *h,
                     float *g) {
  return later.wait().gradients(p, in, s, n, h, g);
}
double gradients64Later(double *p, const double *const *in, char *s, int64_t n, const double *h,
                        double *g) {
  return later.wait().gradients64(p, in, s, n, h, g);
}
float probeLater(float *p, const float *const *in, char *s, int64_t n, const float *h) {
  return later.wait().probe(p, in, s, n, h);
}

// AddressSanitizer's runtime unmaps a dying thread's dynamic-TLS block
// twice (DTLS_Destroy runs again in glibc's later destructor round): a JIT
// page mapped in between - the model's descriptor - vanished, and netc run
// faulted now and then, in the sanitizer build only. There no thread ends
// before training does: every part is compiled one after the other (the
// first group in the main thread, the rest in the background thread, which
// then waits for the trainer to finish).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kThreadsMustOutliveTraining = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kThreadsMustOutliveTraining = true;
#else
constexpr bool kThreadsMustOutliveTraining = false;
#endif
#else
constexpr bool kThreadsMustOutliveTraining = false;
#endif

/// Objects of `parts`, on every core (compileParts), or under ASan one part
/// at a time in the calling thread (runParallel runs a single part inline).
llvm::Error compileOneByOne(const std::vector<const ModulePart *> &parts, int level,
                            std::vector<std::string> &objects) {
  if (!kThreadsMustOutliveTraining)
    return compileParts(parts, "native", level, /*object=*/true, objects);
  objects.clear();
  for (const ModulePart *part : parts) {
    std::vector<std::string> object;
    if (auto err = compileParts({part}, "native", level, /*object=*/true, object))
      return err;
    objects.push_back(std::move(object.front()));
  }
  return llvm::Error::success();
}

llvm::Error addObjects(llvm::orc::LLJIT &jit, llvm::orc::JITDylib &dylib,
                       std::vector<std::string> &objects) {
  for (std::string &object : objects)
    if (auto err = jit.addObjectFile(dylib, llvm::MemoryBuffer::getMemBufferCopy(object, "part")))
      return err;
  return llvm::Error::success();
}

} // namespace

int runModule(llvm::Module &module, const std::string &modelName, int level,
              const std::vector<std::string> &args, bool timings) {
  auto say = [&](const char *what) {
    if (timings)
      std::fprintf(stderr, "netc run: %s %.3f s after launch\n", what, secondsSinceLaunch());
  };
  const std::string prefix = modelName + ".";
  std::vector<ModulePart> parts = splitModule(module, modelName, compileThreads());
  std::vector<const ModulePart *> first, rest;
  for (const ModulePart &p : parts)
    (p.first ? first : rest).push_back(&p);

  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit)
    return fail(jit.takeError());
  llvm::orc::JITDylib &main = (*jit)->getMainJITDylib();
  llvm::orc::SymbolMap symbols = runtimeSymbols(**jit);
  // The entry points of the other parts, as trampolines for now.
  const std::pair<const char *, void *> trampolines[] = {
      {"forward", reinterpret_cast<void *>(&forwardLater)},
      {"predict", reinterpret_cast<void *>(&predictLater)},
      {"gradients", reinterpret_cast<void *>(&gradientsLater)},
      {"gradients_f64", reinterpret_cast<void *>(&gradients64Later)},
      {"probe", reinterpret_cast<void *>(&probeLater)}};
  for (const ModulePart *p : rest)
    for (const std::string &name : p->defines)
      for (auto [entry, address] : trampolines)
        if (name == prefix + entry)
          symbols[(*jit)->mangleAndIntern(name)] = {
              llvm::orc::ExecutorAddr::fromPtr(address),
              llvm::JITSymbolFlags::Exported | llvm::JITSymbolFlags::Callable};
  if (auto err = main.define(llvm::orc::absoluteSymbols(std::move(symbols))))
    return fail(std::move(err));
  auto process = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      (*jit)->getDataLayout().getGlobalPrefix());
  if (!process)
    return fail(process.takeError());
  main.addGenerator(std::move(*process));

  std::vector<std::string> objects;
  if (auto err = compileOneByOne(first, level, objects))
    return fail(std::move(err));
  if (auto err = addObjects(**jit, main, objects))
    return fail(std::move(err));
  auto descriptor = (*jit)->lookup(modelSymbol(modelName));
  if (!descriptor)
    return fail(descriptor.takeError());
  say("init and train_step compiled");

  // The rest, while training starts.
  auto restDylib = (*jit)->createJITDylib("rest");
  if (!restDylib)
    return fail(restDylib.takeError());
  restDylib->addToLinkOrder(main);
  std::mutex trainingLock;
  std::condition_variable trainingEnded;
  bool trained = false;
  std::vector<std::string> restObjects;
  later.link = [&]() -> std::string {
    if (auto err = addObjects(**jit, *restDylib, restObjects))
      return llvm::toString(std::move(err));
    std::string error;
    auto bind = [&](const char *entry, auto &slot) {
      bool defined = false; // predict is not, in a model without an output
      for (const ModulePart *p : rest)
        for (const std::string &name : p->defines)
          defined = defined || name == prefix + entry;
      if (!error.empty() || !defined)
        return;
      auto found = (*jit)->lookup(*restDylib, prefix + entry);
      if (found)
        slot = found->toPtr<std::remove_reference_t<decltype(slot)>>();
      else
        error = llvm::toString(found.takeError());
    };
    bind("forward", later.forward);
    bind("predict", later.predict);
    bind("gradients", later.gradients);
    bind("gradients_f64", later.gradients64);
    bind("probe", later.probe);
    return error;
  };
  std::thread background([&] {
    std::string error;
    if (auto err = compileOneByOne(rest, level, restObjects))
      error = llvm::toString(std::move(err));
    say("forward, predict and the gradients compiled");
    {
      std::lock_guard<std::mutex> l(later.lock);
      later.done = true;
      later.error = error;
    }
    later.ready.notify_all();
    if (kThreadsMustOutliveTraining) {
      std::unique_lock<std::mutex> l(trainingLock);
      trainingEnded.wait(l, [&] { return trained; });
    }
  });

  std::vector<std::string> storage(args);
  std::vector<char *> argv;
  for (std::string &a : storage)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  int status = netc_main(descriptor->toPtr<const netc_model *>(),
                         static_cast<int>(storage.size()), argv.data());
  bool compiled;
  {
    std::lock_guard<std::mutex> l(later.lock);
    compiled = later.done;
  }
  if (!compiled) {
    // Training ended before the rest was compiled (a short run): nothing
    // needs it, and LLVM cannot be stopped midway. Every file is written.
    std::fflush(nullptr);
    _exit(status);
  }
  {
    std::lock_guard<std::mutex> l(trainingLock);
    trained = true;
  }
  trainingEnded.notify_all();
  background.join();
  return status;
}

} // namespace netc
