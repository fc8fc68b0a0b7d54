/* netc/runtime.h - the contract between netc-generated code and the runtime.
 *
 * This C header is the only thing both sides share: netc's code generator
 * includes it for the constants below, the runtime for everything. A
 * generated object defines one model descriptor (struct netc_model) per
 * model, under the single external symbol netc_model_<name>; the runtime
 * reaches the generated code only through it, so one process may hold
 * several models. The runtime never knows which model it runs: everything
 * it needs is in the descriptor and its description. Generated code does no
 * I/O.
 *
 * Memory: all f32. `persist` holds the parameters, then the buffers (model
 * tensors that are not trained: batch norm's running statistics), then the
 * optimizer state, at the offsets (in floats) the description gives. `inputs` holds one pointer per
 * data field, in declaration order, each a row-major tensor of the field's
 * shape with the batch dimension N = `n`, f32 or, for fields declared i64
 * (class labels), int64_t (predict reads only the fields
 * with role "input"; the others may be NULL). `scratch` is at least
 * scratch_fixed_bytes + scratch_batch_bytes_per_n * Npad bytes, Npad being
 * n rounded up to a multiple of NETC_BATCH_PAD, aligned to 64 bytes
 * (gradients' and gradients_f64's are their own, below). `hparams` holds
 * the run-time hyperparameters in description order (hparams[0]: learning
 * rate; a model with dropout ends them with its
 * step's random key, see netc_dropout_key).
 *
 * Modes: train_step and gradients compute the training behaviour (dropout
 * drops, batch norm normalises by the batch's statistics and train_step
 * updates its running statistics); forward and predict the evaluation
 * behaviour (dropout is the identity, batch norm uses the running
 * statistics).
 */
#ifndef NETC_RUNTIME_H
#define NETC_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this contract; a descriptor's `abi` must equal it. */
#define NETC_ABI_VERSION 9

/* Per-example scratch offsets are scaled by Npad, the batch size rounded up
 * to a multiple of this, so every per-batch buffer stays 64-byte aligned. */
#define NETC_BATCH_PAD 16

/* The batch dimension N in the description's shapes. */
#define NETC_BATCH_DIM (-1)

/* Npad for a batch of n examples. */
static inline int64_t netc_padded_batch(int64_t n) {
  return (n + NETC_BATCH_PAD - 1) / NETC_BATCH_PAD * NETC_BATCH_PAD;
}

/* Dropout's random bits. In training step `step` (1-based) of a run with
 * seed `seed`, the key is netc_dropout_key(seed, step), passed to the
 * generated code as two hparams of 24 bits each (low bits first); element
 * `index` of dropout layer `stream` is kept when netc_dropout_bits(key,
 * stream, index) >= p * 2^24 (rounded). The generated code computes the
 * same bits inline; the mask depends on nothing else, so it does not
 * depend on the number of threads, and a resumed run draws the same. */
static inline uint64_t netc_mix64(uint64_t h) { /* splitmix64's finalizer */
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBull;
  return h ^ (h >> 31);
}
static inline uint64_t netc_dropout_key(uint64_t seed, int64_t step) {
  return netc_mix64(netc_mix64(seed ^ 0x64726f70ull) + (uint64_t)step) & ((1ull << 48) - 1);
}
static inline uint64_t netc_dropout_bits(uint64_t key, uint64_t stream, uint64_t index) {
  return netc_mix64(key ^ (stream * 0x9E3779B97F4A7C15ull) ^ (index * 0xD1B54A32D192ED03ull)) >>
         40;
}

/* ---- defined by the generated object, one per model --------------------- */

/* A tensor of the persistent block. */
enum netc_tensor_kind {
  NETC_PARAMETER = 0, /* trained */
  NETC_BUFFER = 1,    /* saved with the parameters, not trained (running stats) */
  NETC_STATE = 2      /* optimizer state: checkpoints only */
};
typedef struct netc_tensor {
  const char *name;     /* its state_dict name: "dense_layers.0.weight" */
  const int64_t *shape; /* `rank` sizes */
  int32_t rank;
  int32_t kind;         /* enum netc_tensor_kind */
  int64_t offset;       /* floats into `persist` */
  int64_t numel;
  int32_t integer;      /* kept as f32, saved as I64 (num_batches_tracked) */
} netc_tensor;

/* A data field: one entry of `inputs`. */
enum netc_field_role { NETC_INPUT = 0, NETC_TARGET = 1 };
typedef struct netc_field {
  const char *name;
  const int64_t *shape; /* `rank` sizes, NETC_BATCH_DIM for the batch */
  int32_t rank;
  int32_t role;         /* enum netc_field_role */
  int32_t integer;      /* declared i64 (class labels): passed as int64_t */
  int64_t example_floats; /* floats per example (per batch row) */
} netc_field;

/* A run-time hyperparameter, in hparams order. */
enum netc_hparam_kind {
  NETC_HPARAM_LR = 0,         /* value: the .nn file's learning rate */
  NETC_HPARAM_STEP = 1,       /* 1 - value^(step + offset) (bias corrections) */
  NETC_HPARAM_KEY_LOW = 2,    /* netc_dropout_key(seed, step) & 0xFFFFFF */
  NETC_HPARAM_KEY_HIGH = 3    /* netc_dropout_key(seed, step) >> 24 */
};
typedef struct netc_hparam {
  int32_t kind;   /* enum netc_hparam_kind */
  int32_t offset;
  double value;
} netc_hparam;

typedef struct netc_model {
  int32_t abi;             /* NETC_ABI_VERSION of the generator */
  const char *name;        /* the model's name (netc --name) */
  const char *description; /* NUL-terminated JSON: tensors, fields, options */
  int64_t persistent_floats;      /* size of `persist` in floats */
  int64_t scratch_fixed_bytes;    /* scratch: fixed part ... */
  int64_t scratch_batch_bytes_per_n; /* ... plus this times Npad */
  int64_t prediction_floats;      /* floats predict writes per example */

  /* Fills every parameter from its initializer using `seed`; zeroes the
   * optimizer state. */
  void (*init)(float *persist, uint64_t seed);

  /* One training step on one batch: forward, backward, optimizer update.
   * Returns the loss before the update. */
  float (*train_step)(float *persist, const float *const *inputs, char *scratch, int64_t n,
                      const float *hparams);

  /* The forward pass only. Returns the loss. */
  float (*forward)(float *persist, const float *const *inputs, char *scratch, int64_t n,
                   const float *hparams);

  /* The model's output for n examples, from its inputs alone (no targets),
   * written to out[0 .. n * prediction_floats), example by example. NULL
   * when the model names no output. */
  void (*predict)(float *persist, const float *const *inputs, char *scratch, int64_t n,
                  float *out);

  /* The loss and each parameter's gradient, with no update: the gradient of
   * the parameter at persist + offset is written to grads + offset. Its
   * scratch is its own, of the size the description's "scratch_gradients"
   * gives (the scratch sizes above leave it out: it keeps the branches it
   * took, for gradients_f64). With grads NULL: the loss alone, without the
   * backward pass. */
  float (*gradients)(float *persist, const float *const *inputs, char *scratch, int64_t n,
                     const float *hparams, float *grads);

  /* The same in double precision, everything (persist, inputs other than
   * integer labels, hparams, grads) as double, with a scratch area of the
   * size the description's "scratch_f64" gives. --gradcheck compares
   * against it. It takes the branches (ReLU signs, max-pooling maxima)
   * that the last call of gradients took: after the fields, inputs holds
   * one more tensor per entry of "scratch_f64"'s "decisions", read from
   * where that says gradients left it. grads NULL: the loss alone. */
  double (*gradients_f64)(double *persist, const double *const *inputs, char *scratch,
                          int64_t n, const double *hparams, double *grads);

  /* The description's facts the C library (netc.h) needs, as C data. */
  int32_t tensor_count; /* parameters, buffers, then optimizer states */
  int32_t field_count;
  int32_t hparam_count;
  int32_t min_batch;    /* the fewest examples a training step takes */
  const netc_tensor *tensors;
  const netc_field *fields;
  const netc_hparam *hparams;
  uint64_t seed;        /* the .nn file's train seed */

  /* Data-parallel training (netc --distributed; NULL otherwise). A batch
   * is split into shards; shard_gradients computes one shard's loss and
   * gradients (no update), dividing a mean by the whole batch's example
   * count, which it reads from hparams[hparam_count] (one past the step's
   * hparams): so the batch's loss and gradients are the sums of its
   * shards'. The gradient of the parameter at persist + offset goes to
   * grads + offset as soon as it is complete, and then, when `ready` is not
   * NULL, ready(context, i) tells the caller that parameter i's gradient is
   * there (the backward pass goes on meanwhile). apply_update then applies
   * the optimizer's update to persist from the summed gradients (same
   * layout) with the step's hparams; it does not update batch statistics
   * (netc refuses --distributed for a loss that mixes a batch's examples). */
  float (*shard_gradients)(float *persist, const float *const *inputs, char *scratch, int64_t n,
                           const float *hparams, float *grads,
                           void (*ready)(void *context, int32_t param), void *context);
  void (*apply_update)(float *persist, const float *grads, char *scratch, const float *hparams);

  /* --check-finite's diagnosis (NULL for a model without parameters): the
   * training step as train_step computes it, unfused, every value left in
   * its own place of a scratch area of the size the description's "probe"
   * gives (fixed_bytes + batch_bytes_per_n * Npad), where its "values" list
   * finds each, with its operation, phase and place in the .nn file. */
  float (*probe)(float *persist, const float *const *inputs, char *scratch, int64_t n,
                 const float *hparams);
} netc_model;

/* ---- defined by the runtime, called by generated code ----------------- */

/* Counter-based random numbers: the same (seed, stream, index) always gives
 * the same value, whatever the order of calls. */
float netc_rt_normal(uint64_t seed, uint64_t stream, uint64_t index);  /* N(0, 1) */
float netc_rt_uniform(uint64_t seed, uint64_t stream, uint64_t index); /* [0, 1) */

/* Runs fn(args, c) for every chunk c in [0, chunks) on the runtime's
 * threads (--threads) and returns when all have run. Chunks are independent
 * and their count depends only on the shapes, so results do not depend on
 * the number of threads. Called by the generated code of big kernels. */
void netc_rt_parallel_for(void (*fn)(const void *args, int64_t chunk),
                          const void *args, int64_t chunks);

/* The running chunk's slot, in [0, chunks): the first chunk of the share of
 * the thread that runs it (0 on one thread and outside parallel_for).
 * Chunks that run at the same time have different slots, and one thread's
 * chunks the same: a kernel's workspace indexed by slot is reused by the
 * chunks a thread runs in turn, staying in its core's cache. */
int64_t netc_rt_chunk_slot(void);

/* --profile: while netc_rt_profiling is nonzero, train_step calls
 * netc_rt_profile_mark(k) as its kernel k starts (k: the index of the
 * description's "profile" list) and netc_rt_profile_mark(-1) as it ends;
 * the time between marks is the kernel's. Off, it costs a load and a
 * branch per kernel. */
extern int netc_rt_profiling;
void netc_rt_profile_mark(int32_t kernel);

/* ---- the trainer ---------------------------------------------------------- */

/* The emitted program's main for `model`: flags, data, training, reporting.
 * An executable netc links calls it from the main() it generates; a program
 * with its own main() may call it for any model it links. */
int netc_main(const netc_model *model, int argc, char **argv);

/* The same for a program netc --distributed links: with MPI (libnetc_mpi),
 * one process of `mpirun -np N`, or alone without mpirun. */
int netc_main_distributed(const netc_model *model, int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* NETC_RUNTIME_H */
