/* kernel_times.c - where a training step's time goes, kernel by kernel.
 *
 * Linked (by bench/kernels.sh) in place of the runtime's main() with a
 * model's object, the runtime and --wrap=netc_rt_parallel_for,
 * --wrap=netc_train_step: every chunked kernel the generated code hands to
 * the thread pool is timed as a whole (all its chunks, on all threads), and
 * so is each step. At exit it prints, on stderr, one line per kernel
 * function address: "<address> <seconds> <calls>", then the steps' total.
 * Kernels that are not chunked (small loops, sums) are the rest of the step. */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

typedef void (*chunk_fn)(const void *, int64_t);
enum { kSlots = 256 };
static struct {
  chunk_fn fn;
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
  for (int i = 0; i < kSlots; ++i)
    if (slots[i].fn == fn || !slots[i].fn) {
      slots[i].fn = fn;
      slots[i].seconds += seconds;
      slots[i].calls++;
      return;
    }
}

float __real_netc_train_step(float *, const float *const *, char *, int64_t, const float *);
float __wrap_netc_train_step(float *p, const float *const *in, char *s, int64_t n, const float *h) {
  double start = now();
  float loss = __real_netc_train_step(p, in, s, n, h);
  stepSeconds += now() - start;
  steps++;
  return loss;
}

int netc_main(int argc, char **argv);

int main(int argc, char **argv) {
  int rc = netc_main(argc, argv);
  for (int i = 0; i < kSlots && slots[i].fn; ++i)
    fprintf(stderr, "%p %.6f %ld\n", (void *)slots[i].fn, slots[i].seconds, slots[i].calls);
  fprintf(stderr, "steps %.6f %ld\n", stepSeconds, steps);
  return rc;
}
