// ThreadPool.cpp - a spin-then-sleep pool behind netc_rt_parallel_for.
#include "ThreadPool.h"
#include "ModelInfo.h"

#include <netc/runtime.h>

#include <sched.h>

#include <chrono>
#include <memory>
#include <string>
#include <system_error>

namespace netc::rt {

namespace {

/// How long an idle worker spins before it sleeps. Kernels of a training
/// step come far more often; a sleeping worker costs a futex wake-up.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

std::unique_ptr<ThreadPool> &pool() {
  static std::unique_ptr<ThreadPool> p;
  return p;
}

} // namespace

int availableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    return CPU_COUNT(&set);
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

void setThreads(int threads) {
  pool().reset();
  if (threads <= 1)
    return;
  try {
    pool() = std::make_unique<ThreadPool>(threads);
  } catch (const std::system_error &e) {
    throw Error("cannot start " + std::to_string(threads) + " threads: " + e.what());
  }
}

int64_t workerChunks() { return pool() ? pool()->workerChunks() : 0; }

ThreadPool::ThreadPool(int threads) {
  try {
    for (int i = 1; i < threads; ++i)
      workers_.emplace_back([this, i] { work(i); });
  } catch (...) {
    stopWorkers(); // those already started
    throw;
  }
}

ThreadPool::~ThreadPool() { stopWorkers(); }

void ThreadPool::stopWorkers() {
  stop_.store(true, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto &t : workers_)
    t.join();
}

int64_t ThreadPool::share(int index) {
  int64_t t = threads();
  int64_t begin = chunks_ * index / t, end = chunks_ * (index + 1) / t;
  for (int64_t c = begin; c < end; ++c)
    fn_(args_, c);
  return end - begin;
}

void ThreadPool::run(ChunkFn fn, const void *args, int64_t chunks) {
  fn_ = fn;
  args_ = args;
  chunks_ = chunks;
  finished_.store(0, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  share(0);
  // Every worker has run its share before the next run changes the job.
  int expected = static_cast<int>(workers_.size());
  // Spin (a share takes microseconds), but give the core away now and then:
  // with more threads than cores the worker may be waiting for it.
  for (int spins = 1; finished_.load(std::memory_order_acquire) != expected; ++spins) {
    pause();
    if (spins % 4096 == 0)
      std::this_thread::yield();
  }
}

void ThreadPool::work(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto start = std::chrono::steady_clock::now();
    uint64_t g;
    for (int spins = 0; (g = generation_.load(std::memory_order_acquire)) == seen; ++spins) {
      pause();
      if ((spins & 1023) == 1023 && std::chrono::steady_clock::now() - start > kSpin)
        generation_.wait(seen, std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_relaxed))
      return;
    workerChunks_.fetch_add(share(index), std::memory_order_relaxed);
    finished_.fetch_add(1, std::memory_order_release);
  }
}

} // namespace netc::rt

extern "C" void netc_rt_parallel_for(void (*fn)(const void *, int64_t), const void *args,
                                     int64_t chunks) {
  auto &p = netc::rt::pool();
  if (!p || chunks <= 1) {
    for (int64_t c = 0; c < chunks; ++c)
      fn(args, c);
    return;
  }
  p->run(fn, args, chunks);
}
