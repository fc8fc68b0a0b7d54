/* Rng.c - counter-based random numbers for parameter initialisation.
 *
 * Each value is a pure function of (seed, stream, index): a SplitMix64-style
 * finaliser over the three, so initialisation is deterministic and
 * independent of evaluation order. */
#include "netc/runtime.h"

#include <math.h>

static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t hash(uint64_t seed, uint64_t stream, uint64_t index, uint64_t lane) {
  uint64_t h = mix(seed + 0x9e3779b97f4a7c15ULL);
  h = mix(h ^ (stream + 0x632be59bd9b4e019ULL));
  h = mix(h ^ (index * 2 + lane + 0x85157af5ULL));
  return h;
}

/* A double in [0, 1) from the top 53 bits. */
static double unit(uint64_t bits) { return (double)(bits >> 11) * 0x1.0p-53; }

float netc_rt_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  /* 24 bits: every value is exactly representable and strictly below 1. */
  return (float)(hash(seed, stream, index, 0) >> 40) * 0x1.0p-24f;
}

float netc_rt_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  /* Box-Muller; u1 in (0, 1] keeps the logarithm finite. */
  double u1 = 1.0 - unit(hash(seed, stream, index, 0));
  double u2 = unit(hash(seed, stream, index, 1));
  return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2));
}
