/* alloc_count.c - counts heap allocations made while generated code runs.
 *
 * Linked with the model's object (netc --emit=obj --name model) and the
 * runtime; its main() hands the trainer a copy of the model descriptor whose
 * train_step and forward are wrapped: malloc and friends forward to glibc's
 * and count while a step or a forward pass is running (on any thread: the
 * pool's workers too). At exit it prints the
 * counts; allocations outside the steps must be > 0, which shows the
 * interposition works. */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "netc/runtime.h"

void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);

static atomic_int inside;
static atomic_long during, outside, steps, forwards;

static void count(void) {
  if (atomic_load(&inside))
    atomic_fetch_add(&during, 1);
  else
    atomic_fetch_add(&outside, 1);
}

void *malloc(size_t n) {
  count();
  return __libc_malloc(n);
}
void *calloc(size_t n, size_t size) {
  count();
  return __libc_calloc(n, size);
}
void *realloc(void *p, size_t n) {
  count();
  return __libc_realloc(p, n);
}
void *aligned_alloc(size_t alignment, size_t n) {
  count();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void **out, size_t alignment, size_t n) {
  count();
  *out = __libc_memalign(alignment, n);
  return *out ? 0 : 12; /* ENOMEM */
}

/* The model under test, compiled with --name model; its entry points are
 * wrapped by copying its descriptor. */
extern const netc_model netc_model_model;

static float train_step(float *p, const float *const *in, char *s, int64_t n, const float *h) {
  atomic_store(&inside, 1);
  float loss = netc_model_model.train_step(p, in, s, n, h);
  atomic_store(&inside, 0);
  atomic_fetch_add(&steps, 1);
  return loss;
}

static float forward(float *p, const float *const *in, char *s, int64_t n, const float *h) {
  atomic_store(&inside, 1);
  float loss = netc_model_model.forward(p, in, s, n, h);
  atomic_store(&inside, 0);
  atomic_fetch_add(&forwards, 1);
  return loss;
}

int main(int argc, char **argv) {
  netc_model counted = netc_model_model;
  counted.train_step = train_step;
  counted.forward = forward;
  int rc = netc_main(&counted, argc, argv);
  fprintf(stderr, "train steps %ld, forward passes %ld, allocations inside them %ld, outside %ld\n",
          atomic_load(&steps), atomic_load(&forwards), atomic_load(&during), atomic_load(&outside));
  return rc;
}
