// ThreadPool.h - the trainer's view of the core library's worker threads
// (runtime/core/ThreadPool.c, behind netc_rt_parallel_for).
#pragma once

#include "ModelInfo.h"

#include <netc/netc.h>

#include <cstring>
#include <string>

namespace netc::rt {

/// The most threads --threads accepts.
constexpr int kMaxThreads = NETC_MAX_THREADS;

/// The threads this process may run on (its CPU affinity).
inline int availableCores() { return netc_available_cores(); }

/// The pool netc_rt_parallel_for uses; `threads` <= 1 runs every chunk on
/// the calling thread. Throws Error when the system cannot start them.
inline void setThreads(int threads) {
  if (int err = netc_set_threads(threads))
    throw Error("cannot start " + std::to_string(threads) + " threads: " + std::strerror(err));
}

/// Chunks run by worker threads since setThreads: > 0 shows that work was
/// really shared (the metrics report it).
inline int64_t workerChunks() { return netc_worker_chunks(); }

} // namespace netc::rt
