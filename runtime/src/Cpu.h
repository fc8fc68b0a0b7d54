// Cpu.h - checks, before any generated code runs, that this CPU has the
// features the program was compiled for.
#pragma once

#include "ModelInfo.h"

namespace netc::rt {

/// Throws an Error naming the missing features (and the CPU the program was
/// built for) instead of letting generated code die of SIGILL.
void checkCpu(const ModelInfo &model);

} // namespace netc::rt
