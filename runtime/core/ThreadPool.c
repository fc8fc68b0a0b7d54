/* ThreadPool.c - the worker threads behind netc_rt_parallel_for.
 *
 * Generated code splits a big kernel into a fixed number of independent
 * chunks (the count depends on the shapes, never on the threads) and hands
 * them here; whichever thread runs a chunk, the results are the same bits
 * for every thread count. Thread t of T runs chunks [t*C/T, (t+1)*C/T): the
 * same thread gets the same part of a tensor every step, so the part stays
 * in that core's cache (with chunks taken first-come, Adam's state bounced
 * between the cores and the update ran 5x slower on 2 threads). A thread
 * done with its share takes the chunks another has not started yet, from
 * the front of that share: on a VM one core is often slower than the other
 * for minutes, and with fixed shares the faster waited for it (the MLP's
 * step on 2 threads: the worker spun 11% of the run, the caller 6%). Workers spin
 * for 200 us between kernels (a training step posts several per
 * millisecond), then sleep on a futex over the generation counter; the
 * caller only makes the wake-up system call when a worker sleeps. Not
 * reentrant: one parallel_for at a time, from one thread.
 *
 * C with pthreads and Linux futexes only, so the C library of a model
 * (netc --emit=lib) needs nothing but libc. */
#define _GNU_SOURCE
#include "netc/netc.h"
#include "netc/runtime.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long an idle worker spins before it sleeps, in nanoseconds. */
#define SPIN_NS 200000

/* A participant's share of the current job: chunks [next, end) not yet
 * taken; its owner and, once done with theirs, the others take them. A
 * cache line each. */
struct share {
  _Alignas(64) _Atomic int64_t next;
  int64_t end;
};

static struct {
  int threads; /* participants, the caller included; <= 1: no pool */
  pthread_t *workers;
  struct share *shares;        /* one per participant */
  _Atomic uint32_t generation; /* bumped for every job; the futex word */
  uint32_t first;              /* the generation when the workers started */
  _Atomic int sleepers;        /* workers inside FUTEX_WAIT or about to be */
  _Atomic int finished;        /* workers done with the current job */
  _Atomic bool stop;
  _Atomic int64_t worker_chunks;
  void (*fn)(const void *, int64_t);
  const void *args;
  int64_t chunks;
} pool;

static inline void cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The first chunk of the share this thread runs (netc_rt_chunk_slot). */
static _Thread_local int64_t chunk_slot;

int64_t netc_rt_chunk_slot(void) { return chunk_slot; }

/* Runs the chunks of share `from` not yet taken; returns how many. */
static int64_t take(int from) {
  struct share *s = &pool.shares[from];
  int64_t count = 0;
  for (int64_t c; (c = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed)) < s->end;
       ++count)
    pool.fn(pool.args, c);
  return count;
}

/* Where participant `index`'s share of the current job starts (and the
 * previous one's ends). */
static int64_t share_start(int index) { return pool.chunks * index / pool.threads; }

/* Runs participant `index`'s share of the job, then what is left of the
 * others'; returns how many chunks. The slot is the first chunk of its own
 * share: a participant with none (fewer chunks than threads) has no slot
 * of its own and takes nothing. */
static int64_t share(int index) {
  int64_t begin = share_start(index);
  if (begin == share_start(index + 1))
    return 0;
  chunk_slot = begin;
  int64_t count = take(index);
  for (int i = 1; i < pool.threads; ++i)
    count += take((index + i) % pool.threads);
  return count;
}

static void wake_all(void) {
  atomic_fetch_add(&pool.generation, 1);
  /* seq_cst on both sides: either the worker's futex sees the new
   * generation, or this load sees the worker's sleepers increment. */
  if (atomic_load(&pool.sleepers) > 0)
    syscall(SYS_futex, &pool.generation, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void *work(void *arg) {
  int index = (int)(intptr_t)arg;
  uint32_t seen = pool.first; /* jobs before this pool's are not ours */
  for (;;) {
    int64_t start = now_ns();
    uint32_t g;
    for (int spins = 0; (g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen;
         ++spins) {
      cpu_pause();
      if ((spins & 1023) == 1023 && now_ns() - start > SPIN_NS) {
        atomic_fetch_add(&pool.sleepers, 1);
        syscall(SYS_futex, &pool.generation, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
        atomic_fetch_sub(&pool.sleepers, 1);
      }
    }
    seen = g;
    if (atomic_load_explicit(&pool.stop, memory_order_relaxed))
      return NULL;
    atomic_fetch_add_explicit(&pool.worker_chunks, share(index), memory_order_relaxed);
    atomic_fetch_add_explicit(&pool.finished, 1, memory_order_release);
  }
}

static void stop_workers(int started) {
  atomic_store(&pool.stop, true);
  wake_all();
  for (int i = 0; i < started; ++i)
    pthread_join(pool.workers[i], NULL);
  free(pool.workers);
  free(pool.shares);
  pool.workers = NULL;
  pool.shares = NULL;
  pool.threads = 1;
  atomic_store(&pool.stop, false);
}

int netc_available_cores(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int netc_set_threads(int threads) {
  if (pool.threads > 1)
    stop_workers(pool.threads - 1);
  pool.threads = 1;
  atomic_store(&pool.worker_chunks, 0);
  if (threads <= 1)
    return 0;
  if (threads > NETC_MAX_THREADS)
    return EINVAL;
  pool.workers = calloc((size_t)threads - 1, sizeof *pool.workers);
  pool.shares = aligned_alloc(_Alignof(struct share), (size_t)threads * sizeof *pool.shares);
  if (!pool.workers || !pool.shares) {
    free(pool.workers);
    free(pool.shares);
    pool.workers = NULL;
    pool.shares = NULL;
    return ENOMEM;
  }
  pool.threads = threads;
  pool.first = atomic_load(&pool.generation);
  for (int i = 1; i < threads; ++i) {
    int rc = pthread_create(&pool.workers[i - 1], NULL, work, (void *)(intptr_t)i);
    if (rc != 0) {
      stop_workers(i - 1); /* those already started */
      return rc;
    }
  }
  return 0;
}

int netc_threads(void) { return pool.threads > 1 ? pool.threads : 1; }

int64_t netc_worker_chunks(void) {
  return atomic_load_explicit(&pool.worker_chunks, memory_order_relaxed);
}

void netc_rt_parallel_for(void (*fn)(const void *, int64_t), const void *args, int64_t chunks) {
  if (pool.threads <= 1 || chunks <= 1) {
    chunk_slot = 0;
    for (int64_t c = 0; c < chunks; ++c)
      fn(args, c);
    return;
  }
  pool.fn = fn;
  pool.args = args;
  pool.chunks = chunks;
  for (int i = 0; i < pool.threads; ++i) {
    atomic_store_explicit(&pool.shares[i].next, share_start(i), memory_order_relaxed);
    pool.shares[i].end = share_start(i + 1);
  }
  atomic_store_explicit(&pool.finished, 0, memory_order_relaxed);
  wake_all();
  share(0);
  /* Every worker has run its share before the next job changes it. Spin
   * (a share takes microseconds), but give the core away now and then:
   * with more threads than cores the worker may be waiting for it. */
  int expected = pool.threads - 1;
  for (int spins = 1; atomic_load_explicit(&pool.finished, memory_order_acquire) != expected;
       ++spins) {
    cpu_pause();
    if (spins % 4096 == 0)
      sched_yield();
  }
}
