// ThreadPool.h - the runtime's worker threads for netc_rt_parallel_for.
//
// Generated code splits a big kernel into a fixed number of independent
// chunks (the count depends on the shapes, never on the threads) and hands
// them here; whichever thread runs a chunk, the results are the same bits
// for every thread count. Thread t of T runs chunks [t·C/T, (t+1)·C/T): the
// same thread gets the same part of a tensor every step, so the part stays
// in that core's cache (with chunks taken first-come, Adam's state bounced
// between the cores and the update ran 5x slower on 2 threads). Workers spin
// briefly between kernels (a training step posts several per millisecond)
// and then sleep on the generation counter. Not reentrant: one parallel_for
// at a time, from one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace netc::rt {

using ChunkFn = void (*)(const void *args, int64_t chunk);

class ThreadPool {
public:
  /// `threads` in all, the calling thread included.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  /// Runs fn(args, c) for every c in [0, chunks) and returns when all ran.
  void run(ChunkFn fn, const void *args, int64_t chunks);
  /// Chunks the worker threads (not the caller) have run so far.
  int64_t workerChunks() const { return workerChunks_.load(std::memory_order_relaxed); }

private:
  void work(int index);
  void stopWorkers();
  /// Runs participant `index`'s share of the chunks; returns how many.
  int64_t share(int index);

  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> finished_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> workerChunks_{0};
  ChunkFn fn_ = nullptr;
  const void *args_ = nullptr;
  int64_t chunks_ = 0;
};

/// The most threads --threads accepts.
constexpr int kMaxThreads = 1024;

/// The threads this process may run on (its CPU affinity).
int availableCores();

/// The pool netc_rt_parallel_for uses; `threads` <= 1 runs every chunk on
/// the calling thread. Throws Error when the system cannot start them.
void setThreads(int threads);

/// Chunks run by worker threads since setThreads: > 0 shows that work was
/// really shared (the metrics report it).
int64_t workerChunks();

} // namespace netc::rt
