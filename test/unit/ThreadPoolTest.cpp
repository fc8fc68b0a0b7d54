// ThreadPoolTest.cpp - the runtime's pool behind netc_rt_parallel_for: every
// chunk runs exactly once, workers really run chunks at the same time as the
// caller (also after they slept), one thread runs the chunks in order on
// the calling thread, chunks running at once have their own slots, and a
// thread done with its share takes what is left of another's.
#include "ThreadPool.h"

#include <netc/runtime.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace netc::rt {
namespace {

struct Counts {
  std::vector<std::atomic<int>> ran;
  explicit Counts(size_t n) : ran(n) {}
};

void count(const void *args, int64_t chunk) {
  auto *c = static_cast<Counts *>(const_cast<void *>(args));
  c->ran[static_cast<size_t>(chunk)].fetch_add(1);
}

TEST(ThreadPool, EveryChunkRunsExactlyOnce) {
  setThreads(3);
  for (int64_t chunks = 0; chunks <= 40; ++chunks) {
    for (int repeat = 0; repeat < 50; ++repeat) {
      Counts c(static_cast<size_t>(chunks));
      netc_rt_parallel_for(count, &c, chunks);
      for (int64_t i = 0; i < chunks; ++i)
        ASSERT_EQ(c.ran[static_cast<size_t>(i)].load(), 1) << chunks << " chunks, chunk " << i;
    }
  }
  setThreads(1);
}

// Each of two chunks waits until both have started: only two threads running
// at once can finish (a 20 s limit turns a hang into a failure).
struct Rendezvous {
  std::atomic<int> started{0};
  std::atomic<bool> timedOut{false};
};

void meet(const void *args, int64_t) {
  auto *r = static_cast<Rendezvous *>(const_cast<void *>(args));
  r->started.fetch_add(1);
  auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (r->started.load() < 2)
    if (std::chrono::steady_clock::now() > limit) {
      r->timedOut = true;
      return;
    }
}

// Workers that have gone to sleep (after 200 us without work) wake up.
TEST(ThreadPool, SleepingWorkersWakeUp) {
  setThreads(2);
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    Rendezvous r;
    netc_rt_parallel_for(meet, &r, 2);
    ASSERT_FALSE(r.timedOut) << "run " << i;
  }
  EXPECT_GE(workerChunks(), 5);
  setThreads(1);
}

// A new pool's workers take only jobs posted after it started (a program
// that runs the trainer twice restarts the pool between the runs).
TEST(ThreadPool, RestartedPoolRunsEveryChunkOnce) {
  for (int round = 0; round < 20; ++round) {
    setThreads(2 + round % 2);
    Counts c(8);
    netc_rt_parallel_for(count, &c, 8);
    for (size_t i = 0; i < 8; ++i)
      ASSERT_EQ(c.ran[i].load(), 1) << "round " << round << ", chunk " << i;
  }
  setThreads(1);
}

TEST(ThreadPool, RefusesMoreThanTheLimit) {
  EXPECT_NE(netc_set_threads(NETC_MAX_THREADS + 1), 0);
  EXPECT_EQ(netc_threads(), 1);
}

struct Order {
  std::vector<int64_t> seen;
  std::thread::id thread;
  bool sameThread = true;
};

void record(const void *args, int64_t chunk) {
  auto *o = static_cast<Order *>(const_cast<void *>(args));
  o->seen.push_back(chunk);
  o->sameThread = o->sameThread && std::this_thread::get_id() == o->thread;
}

TEST(ThreadPool, OneThreadRunsChunksInOrderOnTheCaller) {
  setThreads(1);
  Order o;
  o.thread = std::this_thread::get_id();
  netc_rt_parallel_for(record, &o, 5);
  EXPECT_EQ(o.seen, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(o.sameThread);
  EXPECT_EQ(workerChunks(), 0);
}

TEST(ThreadPool, ParallelForSharesWorkAfterSetThreads) {
  setThreads(2);
  for (int i = 0; i < 20; ++i) {
    Rendezvous r;
    netc_rt_parallel_for(meet, &r, 2);
    ASSERT_FALSE(r.timedOut);
  }
  EXPECT_GE(workerChunks(), 20);
  setThreads(1);
}

// netc_rt_chunk_slot: the slot of every chunk a thread runs is the first
// chunk of its share, so chunks running at once never share a slot (a
// kernel's workspace) and one thread reuses one. Each chunk records its
// slot and whether another chunk held that slot while it ran.
struct Slots {
  std::vector<int64_t> slot;
  std::vector<std::thread::id> thread;
  std::vector<std::atomic<int>> holders;
  std::atomic<bool> shared{false};
  explicit Slots(size_t chunks) : slot(chunks), thread(chunks), holders(chunks) {}
};

void takeSlot(const void *args, int64_t chunk) {
  auto *s = static_cast<Slots *>(const_cast<void *>(args));
  int64_t slot = netc_rt_chunk_slot();
  size_t c = static_cast<size_t>(chunk);
  s->slot[c] = slot;
  s->thread[c] = std::this_thread::get_id();
  if (slot < 0 || slot >= static_cast<int64_t>(s->holders.size()) ||
      s->holders[static_cast<size_t>(slot)].fetch_add(1) != 0) {
    s->shared = true;
    return;
  }
  std::this_thread::sleep_for(std::chrono::microseconds(200)); // overlap the others
  s->holders[static_cast<size_t>(slot)].fetch_sub(1);
}

TEST(ThreadPool, ChunksRunningAtOnceHaveTheirOwnSlots) {
  for (int threads : {1, 2, 3, 5}) {
    setThreads(threads);
    for (int64_t chunks : {1, 2, 3, 6, 16}) {
      Slots s(static_cast<size_t>(chunks));
      netc_rt_parallel_for(takeSlot, &s, chunks);
      EXPECT_FALSE(s.shared) << threads << " threads, " << chunks << " chunks";
      for (size_t a = 0; a < s.slot.size(); ++a) {
        if (threads == 1)
          EXPECT_EQ(s.slot[a], 0);
        for (size_t b = 0; b < a; ++b) // one slot per thread
          EXPECT_EQ(s.thread[a] == s.thread[b], s.slot[a] == s.slot[b])
              << threads << " threads, " << chunks << " chunks, chunks " << b << " and " << a;
      }
    }
  }
  setThreads(1);
}

// A thread done with its share takes the chunks another has not started:
// the caller's share (chunks 0-3 of 8 on two threads) sleeps 40 ms a chunk,
// the worker's is instant, so with fixed shares the caller would run all
// four (160 ms) while the worker waited; the worker takes some of them.
struct Uneven {
  std::vector<std::thread::id> thread = std::vector<std::thread::id>(8);
};

void uneven(const void *args, int64_t chunk) {
  auto *u = static_cast<Uneven *>(const_cast<void *>(args));
  u->thread[static_cast<size_t>(chunk)] = std::this_thread::get_id();
  if (chunk < 4)
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
}

TEST(ThreadPool, ADoneThreadTakesWhatIsLeftOfAnothersShare) {
  setThreads(2);
  Uneven u;
  netc_rt_parallel_for(uneven, &u, 8);
  int others = 0;
  for (size_t c = 1; c < 4; ++c)
    others += u.thread[c] != u.thread[0];
  EXPECT_GE(others, 1) << "the slow share's chunks all ran on one thread";
  setThreads(1);
}

} // namespace
} // namespace netc::rt
