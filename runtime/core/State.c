/* State.c - a model's state for the C library (netc.h): its persistent block
 * and scratch, and the step bookkeeping the trainer does around the
 * generated entry points (hparams per step, checks of batch sizes and class
 * labels), so that a program's own loop trains to the trainer's bits. */
#define _POSIX_C_SOURCE 200809L
#include "Core.h"
#include "netc/netc.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct netc_state {
  const netc_model *model;
  int64_t max_batch;
  float *persist;
  char *scratch;
  float *hparams;
  const void **pointers;
  uint64_t seed;
  int64_t steps;
  char error[512];
};

static void *aligned(size_t bytes) {
  void *p = NULL;
  return posix_memalign(&p, 64, bytes ? (bytes + 63) / 64 * 64 : 64) == 0 ? p : NULL;
}

static int fail(netc_state *s, int code, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(s->error, sizeof s->error, format, args);
  va_end(args);
  return code;
}

netc_state *netc_state_create(const netc_model *model, int64_t max_batch) {
  if (!model || model->abi != NETC_ABI_VERSION || max_batch < 1 || max_batch > (1 << 24)) {
    errno = EINVAL;
    return NULL;
  }
  netc_state *s = calloc(1, sizeof *s);
  if (!s) {
    errno = ENOMEM;
    return NULL;
  }
  s->model = model;
  s->max_batch = max_batch;
  size_t scratch = (size_t)(model->scratch_fixed_bytes +
                            model->scratch_batch_bytes_per_n * netc_padded_batch(max_batch));
  s->persist = aligned((size_t)model->persistent_floats * sizeof(float));
  s->scratch = aligned(scratch);
  s->hparams = calloc((size_t)model->hparam_count + 1, sizeof(float));
  s->pointers = calloc((size_t)model->field_count + 1, sizeof(void *));
  if (!s->persist || !s->scratch || !s->hparams || !s->pointers) {
    netc_state_destroy(s);
    errno = ENOMEM;
    return NULL;
  }
  netc_state_init(s, model->seed);
  return s;
}

void netc_state_destroy(netc_state *s) {
  if (!s)
    return;
  free(s->pointers);
  free(s->hparams);
  free(s->scratch);
  free(s->persist);
  free(s);
}

void netc_state_init(netc_state *s, uint64_t seed) {
  s->seed = seed;
  s->steps = 0;
  s->model->init(s->persist, seed);
  for (int32_t i = 0; i < s->model->hparam_count; ++i)
    s->hparams[i] = s->model->hparams[i].kind == NETC_HPARAM_LR
                        ? (float)s->model->hparams[i].value
                        : 1.0f;
  s->error[0] = '\0';
}

int netc_state_load(netc_state *s, const char *path) {
  return netc_weights_load(s->model, s->persist, path, s->error, sizeof s->error);
}

int netc_state_save(netc_state *s, const char *path) {
  return netc_weights_save(s->model, s->persist, path, s->error, sizeof s->error);
}

void netc_step_hparams(const netc_model *m, uint64_t seed, int64_t step, float *hparams) {
  uint64_t key = netc_dropout_key(seed, step);
  for (int32_t i = 0; i < m->hparam_count; ++i) {
    const netc_hparam *h = &m->hparams[i];
    if (h->kind == NETC_HPARAM_STEP)
      hparams[i] = (float)(1.0 - pow(h->value, (double)(step + h->offset)));
    else if (h->kind == NETC_HPARAM_KEY_LOW)
      hparams[i] = (float)(key & 0xFFFFFF);
    else if (h->kind == NETC_HPARAM_KEY_HIGH)
      hparams[i] = (float)(key >> 24);
  }
}

/* The field pointers for the generated code; checks the batch size and
 * that class labels name a class (the generated code indexes with them). */
static int prepare(netc_state *s, const void *const *fields, int64_t n, bool inputs_only,
                   int64_t min_batch) {
  const netc_model *m = s->model;
  if (n < min_batch || n > s->max_batch)
    return fail(s, EINVAL, "a batch of %lld examples; this state takes %lld to %lld",
                (long long)n, (long long)min_batch, (long long)s->max_batch);
  for (int32_t k = 0; k < m->field_count; ++k) {
    const netc_field *f = &m->fields[k];
    s->pointers[k] = NULL;
    if (inputs_only && f->role != NETC_INPUT)
      continue;
    if (!fields[k])
      return fail(s, EINVAL, "no data for field '%s'", f->name);
    const int64_t *labels = fields[k];
    int64_t classes = m->prediction_floats > 1 ? m->prediction_floats : INT64_MAX;
    for (int64_t i = 0; f->integer && i < n * f->example_floats; ++i)
      if (labels[i] < 0 || labels[i] >= classes)
        return fail(s, EINVAL, "label %lld of field '%s' (example %lld) is not a class 0..%lld",
                    (long long)labels[i], f->name, (long long)(i / f->example_floats),
                    (long long)(classes - 1));
    s->pointers[k] = fields[k];
  }
  return 0;
}

int netc_state_train_step(netc_state *s, const void *const *fields, int64_t n, float *loss) {
  if (prepare(s, fields, n, false, s->model->min_batch))
    return EINVAL;
  netc_step_hparams(s->model, s->seed, ++s->steps, s->hparams);
  float value = s->model->train_step(s->persist, (const float *const *)s->pointers, s->scratch, n,
                                     s->hparams);
  if (loss)
    *loss = value;
  if (!isfinite(value))
    return fail(s, EDOM, "the loss of step %lld is %g: training diverged", (long long)s->steps,
                (double)value);
  return 0;
}

int netc_state_loss(netc_state *s, const void *const *fields, int64_t n, float *loss) {
  if (prepare(s, fields, n, false, 1))
    return EINVAL;
  *loss = s->model->forward(s->persist, (const float *const *)s->pointers, s->scratch, n,
                            s->hparams);
  return 0;
}

int netc_state_predict(netc_state *s, const void *const *fields, int64_t n, float *out) {
  if (!s->model->predict)
    return fail(s, ENOTSUP, "model '%s' has no output to predict", s->model->name);
  if (prepare(s, fields, n, true, 1))
    return EINVAL;
  s->model->predict(s->persist, (const float *const *)s->pointers, s->scratch, n, out);
  return 0;
}

void netc_state_set_lr(netc_state *s, float lr) {
  for (int32_t i = 0; i < s->model->hparam_count; ++i)
    if (s->model->hparams[i].kind == NETC_HPARAM_LR)
      s->hparams[i] = lr;
}

int64_t netc_state_steps(const netc_state *s) { return s->steps; }

float *netc_state_tensor(netc_state *s, const char *name) {
  for (int32_t i = 0; i < s->model->tensor_count; ++i)
    if (!strcmp(s->model->tensors[i].name, name))
      return s->persist + s->model->tensors[i].offset;
  return NULL;
}

const char *netc_state_error(const netc_state *s) { return s->error; }

const netc_model *netc_state_model(const netc_state *s) { return s->model; }
