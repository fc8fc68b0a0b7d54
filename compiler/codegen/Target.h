// Target.h - the machine netc compiles for, LLVM's optimizer, and object
// emission.
#pragma once

#include <llvm/IR/Module.h>
#include <llvm/Support/Error.h>
#include <llvm/Target/TargetMachine.h>

#include <memory>
#include <string>
#include <vector>

namespace netc {

struct TargetInfo {
  std::string triple;
  std::string cpu;                   ///< e.g. "emeraldrapids", "x86-64-v3"
  std::vector<std::string> features; ///< enabled features, without '+'
  std::unique_ptr<llvm::TargetMachine> machine;
  bool hasFeature(std::string_view f) const;
  /// Bytes in one SIMD register the generated kernels use: 64 with AVX-512,
  /// 32 with AVX, else 16.
  unsigned vectorBytes() const;
  /// SIMD registers available to a kernel: 32 with AVX-512, else 16.
  unsigned vectorRegisters() const;
  /// The optimizer's update divides and takes square roots by estimates
  /// (EmitContext::estimates): with AVX-512, whose 14-bit estimates Intel
  /// specifies to the bit (AVX's 12-bit ones differ between vendors), on
  /// Intel's cores, where vsqrtps and vdivps share a slow divider. AMD's
  /// Zen cores divide exactly as fast or faster: on a Zen 5 the MLP's
  /// training steps took 5% less time exact (1,500 in 0.816-0.834 s against
  /// 0.859-0.885 with the estimates' Newton steps and denormal guards, one
  /// thread, interleaved), and LLVM's Zen 4 model rates both alike.
  bool updateEstimates() const { return hasFeature("avx512f") && !cpu.starts_with("znver"); }
};

/// A TargetMachine for `cpu` ("" or "native": this machine's CPU and its
/// features). An unknown CPU name is a user error.
llvm::Expected<TargetInfo> createTarget(const std::string &cpu);

/// Adds target attributes to every function and runs LLVM's O1-O3 pipeline
/// with loop and SLP vectorization.
void optimizeModule(llvm::Module &module, const TargetInfo &target, int level);

/// Object code or assembly for `module`.
llvm::Expected<std::string> emitMachineCode(llvm::Module &module,
                                            const TargetInfo &target,
                                            bool assembly);

} // namespace netc
