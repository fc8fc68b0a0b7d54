/* fma_peak.c - this core's fp32 fused multiply-add peak, in GFLOP/s.
 *
 * Twelve independent accumulators of the widest vectors the compiler
 * targets (-march=native), each updated by a multiply-add per iteration:
 * enough to cover the FMA latency on every current x86 core. bench/run.sh
 * divides netc's FLOP rate by this to report the fraction of peak. */
#include <stdio.h>
#include <time.h>

typedef float vec __attribute__((vector_size(64)));
enum { kAccumulators = 12, kLanes = sizeof(vec) / sizeof(float) };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
  vec acc[kAccumulators], x, y;
  for (int l = 0; l < kLanes; ++l) {
    x[l] = 1.0000001f;
    y[l] = 0.9999999f;
  }
  for (int i = 0; i < kAccumulators; ++i)
    for (int l = 0; l < kLanes; ++l)
      acc[i][l] = (float)i;
  const long iterations = 100000000L;
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    double start = now();
    for (long n = 0; n < iterations; ++n)
      for (int i = 0; i < kAccumulators; ++i)
        acc[i] = acc[i] * x + y; /* contracted to FMA by -ffp-contract=fast */
    double rate = (double)iterations * kAccumulators * kLanes * 2 / (now() - start) / 1e9;
    if (rate > best)
      best = rate;
  }
  float sink = 0;
  for (int i = 0; i < kAccumulators; ++i)
    sink += acc[i][0];
  printf("%.1f\n", best + 0 * (double)sink);
  return 0;
}
