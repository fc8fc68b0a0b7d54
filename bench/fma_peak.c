/* fma_peak.c - this core's fp32 fused multiply-add peak, in GFLOP/s.
 *
 * Twelve independent accumulators of 16 floats, each updated by a
 * multiply-add per iteration: enough to cover the FMA latency on every
 * current x86 core. On an AVX-512 machine they must be single zmm
 * registers, what netc's kernels use: clang's tuning for some Intel cores
 * (Sapphire Rapids) prefers 256-bit vectors and would split each into two
 * ymm halves, which measured half the peak there (133 vs 247 GFLOP/s), so
 * bench/run.sh compiles this with -mprefer-vector-width=512. The best of
 * five trials of about 0.2 s; bench/run.sh measures again beside every
 * netc row and divides by the larger (the peak moves with the VM's clock).
 * It divides netc's FLOP rate by this to report the fraction of peak. */
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
  for (int trial = 0; trial < 5; ++trial) {
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
