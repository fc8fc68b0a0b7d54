/* netc/runtime.h - the contract between netc-generated code and the runtime.
 *
 * This C header is the only thing both sides share. A generated object
 * defines the model description and the entry points; the runtime defines
 * the functions generated code may call, and the program's main(). The
 * runtime never knows which model it runs: everything it needs is in
 * netc_model_json. Generated code does no I/O.
 *
 * Memory: all f32. `persist` holds parameters then optimizer state at the
 * offsets (in floats) the description gives. `inputs` holds one pointer per
 * data field, in declaration order, each a row-major tensor of the field's
 * shape with the batch dimension N = `n`. `scratch` is at least
 * scratch.fixed_bytes + scratch.batch_bytes_per_n * Npad bytes, Npad being
 * n rounded up to a multiple of 16, aligned to 64 bytes. `hparams` holds the
 * run-time hyperparameters in description order (hparams[0]: learning rate).
 */
#ifndef NETC_RUNTIME_H
#define NETC_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this contract; netc_model_json's "abi" must equal it. */
#define NETC_ABI_VERSION 2

/* ---- defined by the generated object ---------------------------------- */

/* The model description: a NUL-terminated JSON object. */
extern const char netc_model_json[];

/* Fills every parameter from its initializer using `seed`; zeroes the
 * optimizer state. */
void netc_init(float *persist, uint64_t seed);

/* One training step on one batch: forward, backward, optimizer update.
 * Returns the loss before the update. */
float netc_train_step(float *persist, const float *const *inputs,
                      char *scratch, int64_t n, const float *hparams);

/* The forward pass only. Returns the loss. */
float netc_forward(float *persist, const float *const *inputs, char *scratch,
                   int64_t n, const float *hparams);

/* The loss and each parameter's gradient, with no update: the gradient of
 * the parameter at persist + offset is written to grads + offset. */
float netc_gradients(float *persist, const float *const *inputs, char *scratch,
                     int64_t n, const float *hparams, float *grads);

/* The same in double precision, everything (persist, inputs other than
 * integer labels, hparams, grads) as double, with a scratch area of the
 * size "scratch_f64" gives. --gradcheck compares against it. */
double netc_gradients_f64(double *persist, const double *const *inputs, char *scratch,
                          int64_t n, const double *hparams, double *grads);

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

/* The emitted program's main: flags, data, training, reporting. A program
 * that embeds a model and has its own main() may still call it. */
int netc_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* NETC_RUNTIME_H */
