// Target.cpp - host detection, LLVM optimization pipeline, object emission.
#include "compiler/codegen/Target.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/SubtargetFeature.h>
#include <llvm/TargetParser/Triple.h>

#include <algorithm>

namespace netc {

bool TargetInfo::hasFeature(std::string_view f) const {
  return std::find(features.begin(), features.end(), f) != features.end();
}

unsigned TargetInfo::vectorBytes() const {
  if (hasFeature("avx512f"))
    return 64;
  return hasFeature("avx") ? 32 : 16;
}

unsigned TargetInfo::vectorRegisters() const { return hasFeature("avx512f") ? 32 : 16; }

llvm::Expected<TargetInfo> createTarget(const std::string &cpuName) {
  static bool initialized = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)initialized;

  TargetInfo info;
  info.triple = llvm::sys::getDefaultTargetTriple();
  std::string error;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(info.triple, error);
  if (!target)
    return llvm::createStringError(llvm::inconvertibleErrorCode(), error);

  llvm::SubtargetFeatures features;
  if (cpuName.empty() || cpuName == "native") {
    info.cpu = llvm::sys::getHostCPUName().str();
    for (const auto &[name, enabled] : llvm::sys::getHostCPUFeatures())
      if (enabled)
        features.AddFeature(name.str());
  } else {
    info.cpu = cpuName;
    std::unique_ptr<llvm::MCSubtargetInfo> sti(
        target->createMCSubtargetInfo(info.triple, cpuName, ""));
    if (!sti || !sti->isCPUStringValid(cpuName))
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "unknown CPU '" + cpuName +
                                         "' (try x86-64, x86-64-v3, skylake-avx512 or native)");
    for (const auto &kv : sti->getAllProcessorFeatures())
      if (sti->checkFeatures(std::string("+") + kv.Key))
        features.AddFeature(kv.Key);
  }
  for (const auto &f : features.getFeatures())
    if (!f.empty() && f[0] == '+')
      info.features.push_back(f.substr(1));
  std::sort(info.features.begin(), info.features.end());

  llvm::TargetOptions options;
  info.machine.reset(target->createTargetMachine(info.triple, info.cpu, features.getString(),
                                                 options, llvm::Reloc::PIC_, std::nullopt,
                                                 llvm::CodeGenOptLevel::Aggressive));
  if (!info.machine)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cannot create a target machine for " + info.cpu);
  return info;
}

void optimizeModule(llvm::Module &module, const TargetInfo &target, int level) {
  std::string featureString = target.machine->getTargetFeatureString().str();
  for (llvm::Function &f : module) {
    if (f.isDeclaration())
      continue;
    f.addFnAttr("target-cpu", target.cpu);
    f.addFnAttr("target-features", featureString);
    // The vectorizer stays at 256 bits on AVX-512 machines unless asked.
    if (target.hasFeature("avx512f"))
      f.addFnAttr("prefer-vector-width", "512");
  }
  module.setDataLayout(target.machine->createDataLayout());
  module.setTargetTriple(target.triple);
  if (level == 0)
    return;

  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  tuning.LoopUnrolling = true;
  llvm::PassBuilder pb(target.machine.get(), tuning);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::OptimizationLevel opt = level == 1   ? llvm::OptimizationLevel::O1
                                : level == 2 ? llvm::OptimizationLevel::O2
                                             : llvm::OptimizationLevel::O3;
  llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(opt);
  mpm.run(module, mam);
}

llvm::Expected<std::string> emitMachineCode(llvm::Module &module, const TargetInfo &target,
                                            bool assembly) {
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream os(buffer);
  llvm::legacy::PassManager pm;
  auto type = assembly ? llvm::CodeGenFileType::AssemblyFile : llvm::CodeGenFileType::ObjectFile;
  if (target.machine->addPassesToEmitFile(pm, os, nullptr, type))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "the target cannot emit this file type");
  pm.run(module);
  return std::string(buffer.begin(), buffer.end());
}

} // namespace netc
