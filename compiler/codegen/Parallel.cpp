// Parallel.cpp - see Parallel.h.
#include "compiler/codegen/Parallel.h"

#include <llvm/Bitcode/BitcodeReader.h>
#include <llvm/Bitcode/BitcodeWriter.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/InstrTypes.h>
#include <llvm/Linker/Linker.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Transforms/Utils/Cloning.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <sched.h>
#include <set>
#include <thread>

namespace netc {

namespace {

/// A unit: a function whose address is taken (an entry point, a chunk
/// function) or that is never inlined (a GEMM helper). Other functions,
/// which the inliner may take into their callers, are cloned where used.
bool isUnit(const llvm::Function &f) {
  return !f.isDeclaration() &&
         (f.hasAddressTaken() || f.hasFnAttribute(llvm::Attribute::NoInline));
}

/// Whether a function of `first` calls `f` directly.
bool calledFrom(const llvm::Function &f, const std::function<bool(const llvm::Function &)> &first) {
  for (const llvm::User *u : f.users())
    if (const auto *call = llvm::dyn_cast<llvm::CallBase>(u))
      if (first(*call->getFunction()))
        return true;
  return false;
}

size_t instructions(const llvm::Function &f) {
  size_t n = 0;
  for (const llvm::BasicBlock &b : f)
    n += b.size();
  return n;
}

/// Removes the internal functions and globals nothing uses (the clones of
/// helpers and tables another part needs).
void dropUnused(llvm::Module &m) {
  for (bool changed = true; changed;) {
    changed = false;
    for (llvm::Function &f : llvm::make_early_inc_range(m.functions()))
      if (f.hasLocalLinkage() && f.use_empty()) {
        f.eraseFromParent();
        changed = true;
      }
    for (llvm::GlobalVariable &g : llvm::make_early_inc_range(m.globals()))
      if (g.hasLocalLinkage() && g.use_empty()) {
        g.eraseFromParent();
        changed = true;
      }
  }
}

std::string bitcodeOf(const llvm::Module &m) {
  std::string out;
  llvm::raw_string_ostream os(out);
  llvm::WriteBitcodeToFile(m, os);
  os.flush();
  return out;
}

llvm::Expected<std::unique_ptr<llvm::Module>> readBitcode(const std::string &bitcode,
                                                         llvm::LLVMContext &context) {
  return llvm::parseBitcodeFile(llvm::MemoryBufferRef(bitcode, "part"), context);
}

} // namespace

int compileThreads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::vector<ModulePart> splitModule(llvm::Module &m, const std::string &modelName,
                                    int perGroup) {
  const std::string prefix = modelName + ".";
  auto byName = [&](const llvm::GlobalValue &g) {
    std::string name = g.getName().str();
    return name == prefix + "init" || name == prefix + "train_step" ||
           name.starts_with(prefix + "train_step.");
  };
  // A helper goes with the training step if the step's code calls it.
  auto first = [&](const llvm::Function &f) {
    return byName(f) || (!f.hasAddressTaken() &&
                         calledFrom(f, [&](const llvm::Function &g) { return byName(g); }));
  };
  struct Unit {
    llvm::Function *f;
    size_t size;
  };
  // [0]: the first group, [1]: the rest, [2]: optnone functions (the
  // probe's), in one part of their own that no pipeline runs over: in the
  // parts of the rest, even skipped by every pass, they made a deep chain's
  // optimization twice as long.
  std::vector<Unit> units[3];
  for (llvm::Function &f : m.functions())
    if (isUnit(f) && f.getName() != "main")
      units[f.hasFnAttribute(llvm::Attribute::OptimizeNone) ? 2
            : first(f)                                      ? 0
                                                            : 1]
          .push_back({&f, instructions(f)});
  // Units become visible across parts (and across the JIT's dylibs);
  // joinParts makes them internal again.
  for (auto &group : units)
    for (Unit &u : group)
      u.f->setLinkage(llvm::GlobalValue::ExternalLinkage);

  std::vector<ModulePart> parts;
  for (int group = 0; group < 3; ++group) {
    std::vector<Unit> &list = units[group];
    std::stable_sort(list.begin(), list.end(),
                     [](const Unit &a, const Unit &b) { return a.size > b.size; });
    // Largest first into the lightest part; the first part of the first
    // group also holds the descriptor and main().
    size_t count = std::min<size_t>(group == 2 ? 1 : static_cast<size_t>(std::max(perGroup, 1)),
                                    std::max<size_t>(list.size(), group == 0 ? 1 : 0));
    std::vector<std::set<const llvm::GlobalValue *>> members(count);
    std::vector<size_t> load(count, 0);
    for (const Unit &u : list) {
      size_t lightest = std::min_element(load.begin(), load.end()) - load.begin();
      members[lightest].insert(u.f);
      load[lightest] += u.size;
    }
    for (size_t p = 0; p < count; ++p) {
      if (group == 0 && p == 0)
        for (llvm::GlobalValue &g : m.global_values())
          if (!g.isDeclaration() && !g.hasLocalLinkage() && !llvm::isa<llvm::Function>(g))
            members[p].insert(&g); // the descriptor
      if (group == 0 && p == 0)
        if (llvm::Function *main = m.getFunction("main"); main && !main->isDeclaration())
          members[p].insert(main);
      llvm::ValueToValueMapTy map;
      auto part = llvm::CloneModule(m, map, [&](const llvm::GlobalValue *g) {
        return members[p].count(g) > 0 || g->hasLocalLinkage();
      });
      dropUnused(*part);
      ModulePart out;
      out.first = group == 0;
      out.unoptimized = group == 2;
      for (const llvm::GlobalValue *g : members[p])
        out.defines.push_back(g->getName().str());
      out.bitcode = bitcodeOf(*part);
      parts.push_back(std::move(out));
    }
  }
  return parts;
}

void runParallel(size_t count, int threads, const std::function<void(size_t)> &work) {
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < count;)
      work(i);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min<int>(threads, static_cast<int>(count)); ++t)
    pool.emplace_back(worker);
  worker();
  for (auto &t : pool)
    t.join();
}

llvm::Expected<std::string> compilePart(const std::string &bitcode, const std::string &cpu,
                                        int level, bool object) {
  llvm::LLVMContext context;
  auto module = readBitcode(bitcode, context);
  if (!module)
    return module.takeError();
  auto target = createTarget(cpu);
  if (!target)
    return target.takeError();
  optimizeModule(**module, *target, level);
  if (object)
    return emitMachineCode(**module, *target, /*assembly=*/false);
  return bitcodeOf(**module);
}

std::vector<std::string> functionOrder(const llvm::Module &m) {
  std::vector<std::string> names;
  for (const llvm::Function &f : m)
    names.push_back(f.getName().str());
  return names;
}

llvm::Error compileParts(const std::vector<const ModulePart *> &parts, const std::string &cpu,
                         int level, bool object, std::vector<std::string> &results) {
  std::string error;
  std::mutex errorLock;
  results.assign(parts.size(), {});
  runParallel(parts.size(), compileThreads(), [&](size_t i) {
    auto done = compilePart(parts[i]->bitcode, cpu, parts[i]->unoptimized ? 0 : level, object);
    if (done) {
      results[i] = std::move(*done);
      return;
    }
    std::lock_guard<std::mutex> lock(errorLock);
    error = llvm::toString(done.takeError());
  });
  if (error.empty())
    return llvm::Error::success();
  return llvm::createStringError(llvm::inconvertibleErrorCode(), error);
}

llvm::Expected<std::unique_ptr<llvm::Module>>
joinParts(llvm::LLVMContext &context, const std::vector<std::string> &bitcodes,
          const std::string &keep, const std::vector<std::string> &order) {
  std::unique_ptr<llvm::Module> joined;
  for (const std::string &bitcode : bitcodes) {
    auto part = readBitcode(bitcode, context);
    if (!part)
      return part.takeError();
    if (!joined) {
      joined = std::move(*part);
      continue;
    }
    if (llvm::Linker::linkModules(*joined, std::move(*part)))
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "internal error: the compiled parts do not link");
  }
  for (llvm::GlobalValue &g : joined->global_values())
    if (!g.isDeclaration() && !g.hasLocalLinkage() && g.getName() != keep &&
        g.getName() != "main")
      g.setLinkage(llvm::GlobalValue::InternalLinkage);
  // The functions as emitModule ordered them (a readable --emit=llvm).
  std::vector<llvm::Function *> ordered;
  for (const std::string &name : order)
    if (llvm::Function *f = joined->getFunction(name))
      ordered.push_back(f);
  for (llvm::Function *f : ordered) {
    f->removeFromParent();
    joined->getFunctionList().push_back(f);
  }
  return joined;
}

} // namespace netc
