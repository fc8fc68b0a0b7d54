/* netc/netc.h - a netc model inside your own program: the C library.
 *
 * `netc model.nn --emit=lib -o DIR/NAME` writes DIR/NAME.o, the model's
 * generated code, and DIR/NAME.h, which declares the model's functions with
 * NAME_ as prefix (NAME_create, NAME_train_step, NAME_predict, ...) as thin
 * wrappers over the functions below, with the model's sizes, shapes and
 * field names. Link NAME.o with libnetc_core.a (this library: libc, libm and
 * pthreads only, no C++ runtime) and -lm:
 *
 *     cc -I PREFIX/include app.c NAME.o PREFIX/lib/netc/libnetc_core.a -lm
 *
 * or, from CMake, find_package(netc) and target_link_libraries(app netc::core).
 * Several models may live in one program: each has its own prefix.
 *
 * Memory: a state owns the model's persistent block (parameters, buffers
 * such as batch norm's running statistics, optimizer state) and a scratch
 * area sized for `max_batch` examples; calls allocate nothing. The caller
 * owns every input and output array and keeps it only for the call.
 * Inputs are row-major f32 tensors of their field's shape with the batch
 * dimension first; class labels (fields declared i64) are int64_t.
 *
 * Errors: functions that can fail return 0 on success and an errno-style
 * code otherwise, with a message in netc_state_error(state); NAME_create
 * returns NULL (errno EINVAL or ENOMEM). A state is used by one thread at a
 * time; the model's kernels run on the threads netc_set_threads starts
 * (shared by all states of the process; results are the same bits for
 * every thread count).
 */
#ifndef NETC_NETC_H
#define NETC_NETC_H

#include "netc/runtime.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The most threads netc_set_threads accepts. */
#define NETC_MAX_THREADS 1024

typedef struct netc_state netc_state;

/* A state for training or running `model` on batches of up to `max_batch`
 * examples; its parameters initialised with the model's seed (as
 * netc_state_init(state, model->seed)). NULL with errno EINVAL (max_batch <
 * 1, or a model of another ABI) or ENOMEM. */
netc_state *netc_state_create(const netc_model *model, int64_t max_batch);
void netc_state_destroy(netc_state *state);

/* Fills every parameter from its initializer with `seed` (the same values
 * as the trainer's --seed), zeroes the optimizer state and the buffers'
 * statistics, and restarts the step count. */
void netc_state_init(netc_state *state, uint64_t seed);

/* Loads the parameters and buffers from a safetensors weights file (what the
 * trainer's --save writes, or netc_torch.save): the file must hold exactly
 * them, with their shapes. The optimizer state and step count are kept. */
int netc_state_load(netc_state *state, const char *path);

/* Writes the parameters and buffers to a safetensors file, as the trainer
 * does (the same bytes for the same values): atomically, through a
 * temporary file beside it; refused if a value is not finite. */
int netc_state_save(netc_state *state, const char *path);

/* One training step (forward, backward, optimizer update) on n examples:
 * fields[k] points to field k's n rows (netc_field order, every field).
 * Dropout's random key and Adam's bias corrections follow the state's step
 * count and seed as in the trainer. Writes the loss before the update to
 * *loss (may be NULL). */
int netc_state_train_step(netc_state *state, const void *const *fields, int64_t n, float *loss);

/* The loss of n examples in evaluation mode, without an update. */
int netc_state_loss(netc_state *state, const void *const *fields, int64_t n, float *loss);

/* The model's output for n examples: fields[k] for the input fields (the
 * others may be NULL); writes n * prediction_floats floats to out. */
int netc_state_predict(netc_state *state, const void *const *fields, int64_t n, float *out);

/* The learning rate of the following steps (default: the .nn file's). */
void netc_state_set_lr(netc_state *state, float lr);
/* Training steps taken since init. */
int64_t netc_state_steps(const netc_state *state);
/* The values of the persistent tensor `name` (a parameter, buffer or
 * optimizer state, by its state_dict name), or NULL. Read and write. */
float *netc_state_tensor(netc_state *state, const char *name);
/* The last error's message ("" if none). */
const char *netc_state_error(const netc_state *state);
const netc_model *netc_state_model(const netc_state *state);

/* Threads for the kernels of every model in the process, the calling
 * thread included (1: none started). 0 or an errno code. */
int netc_set_threads(int threads);
int netc_threads(void);
/* The CPUs this process may run on. */
int netc_available_cores(void);
/* Chunks the worker threads have run since netc_set_threads. */
int64_t netc_worker_chunks(void);

/* Where a training step's time goes (the trainer's --profile): starts
 * timing the kernels of every train_step call (their indexes are those of
 * the model description's "profile" list, below `kernels`), or stops it.
 * netc_profile_kernel gives kernel k's total seconds and calls since the
 * start. 0 or an errno code. Not thread-safe: one training loop at a time. */
int netc_profile_start(int32_t kernels);
void netc_profile_stop(void);
int netc_profile_kernel(int32_t k, double *seconds, int64_t *calls);

#ifdef __cplusplus
}
#endif

#endif /* NETC_NETC_H */
