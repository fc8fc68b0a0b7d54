/* kernel_times.c - where a training step's time goes, kernel by kernel.
 *
 * Linked (by bench/kernels.sh) with a model's object (--name model), the
 * runtime and --wrap=netc_rt_parallel_for: every chunked kernel the
 * generated code hands to the thread pool is timed as a whole (all its
 * chunks, on all threads), and so is each step (through a copy of the
 * model descriptor with train_step wrapped). A kernel is told by its
 * launch's bindings table (the sixth field of the arguments, named
 * <entry>.kernel<i>.bindings in the object): kernels alike share one
 * function. At exit it prints, on stderr, one line per launch: "<function>
 * <bindings> <seconds> <calls>", then the steps' total. Kernels that are
 * not chunked (small loops, sums) are the rest of the step. */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "netc/runtime.h"

typedef void (*chunk_fn)(const void *, int64_t);
enum { kSlots = 256 };
static struct {
  chunk_fn fn;
  const void *bindings;
  double seconds;
  long calls;
} slots[kSlots];
static double stepSeconds;
static long steps;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void __real_netc_rt_parallel_for(chunk_fn, const void *, int64_t);
void __wrap_netc_rt_parallel_for(chunk_fn fn, const void *args, int64_t chunks) {
  double start = now();
  __real_netc_rt_parallel_for(fn, args, chunks);
  double seconds = now() - start;
  const void *bindings = ((const void *const *)args)[5];
  for (int i = 0; i < kSlots; ++i)
    if ((slots[i].fn == fn && slots[i].bindings == bindings) || !slots[i].fn) {
      slots[i].fn = fn;
      slots[i].bindings = bindings;
      slots[i].seconds += seconds;
      slots[i].calls++;
      return;
    }
}

/* The model, compiled with --name model; its train_step is timed through a
 * copy of its descriptor. */
extern const netc_model netc_model_model;

static float train_step(float *p, const float *const *in, char *s, int64_t n, const float *h) {
  double start = now();
  float loss = netc_model_model.train_step(p, in, s, n, h);
  stepSeconds += now() - start;
  steps++;
  return loss;
}

int main(int argc, char **argv) {
  netc_model timed = netc_model_model;
  timed.train_step = train_step;
  int rc = netc_main(&timed, argc, argv);
  for (int i = 0; i < kSlots && slots[i].fn; ++i)
    fprintf(stderr, "%p %p %.6f %ld\n", (void *)slots[i].fn, slots[i].bindings, slots[i].seconds,
            slots[i].calls);
  fprintf(stderr, "steps %.6f %ld\n", stepSeconds, steps);
  return rc;
}
