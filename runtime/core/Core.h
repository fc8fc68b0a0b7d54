/* Core.h - what the core library's files share, and what the C++ trainer
 * (runtime/src) uses of them. Not installed: netc.h is the public API. */
#ifndef NETC_CORE_H
#define NETC_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Atomic replacement of a file: netc_atomic_begin creates a temporary file
 * exclusively beside `path` (O_CREAT|O_EXCL|O_NOFOLLOW, 64 random bits in
 * its name: no planted symlink or second writer can redirect or share it)
 * and opens it in *fd, its name in tmp[tmp_size]; netc_atomic_commit
 * fsyncs and closes it, renames it over `path` and fsyncs the folder;
 * netc_atomic_abort closes and removes it. The functions return 0 or an
 * errno code; begin returns NETC_NOT_REGULAR when `path` exists and is not
 * a regular file (a device, a folder, a symlink: never replaced). On an
 * error of commit the temporary file is gone and `path` untouched. */
#define NETC_NOT_REGULAR (-1)
int netc_atomic_begin(const char *path, char *tmp, size_t tmp_size, int *fd);
int netc_atomic_commit(int fd, const char *tmp, const char *path);
void netc_atomic_abort(int fd, const char *tmp);
/* Writes all `size` bytes (retrying short writes and EINTR): 0 or errno. */
int netc_write_all(int fd, const void *data, size_t size);

/* The largest safetensors header read (bytes) and its deepest nesting. */
#define NETC_MAX_HEADER (32u << 20)
#define NETC_MAX_NESTING 8

struct netc_model;

/* The hparams of training step `step` (1-based) of a run seeded `seed`:
 * Adam's bias corrections, 1 - base^(step + offset) in double, and
 * dropout's key halves (runtime.h); the learning rate is left as it is.
 * The trainer and the C library both set them here. */
void netc_step_hparams(const struct netc_model *model, uint64_t seed, int64_t step,
                       float *hparams);

/* The model's parameters and buffers (its state_dict) from or to a
 * safetensors file, as the trainer's --init/--save read and write them:
 * 0, or an errno-style code with a message in error[cap]. Loading changes
 * `persist` only when the whole file was valid and read. */
int netc_weights_load(const struct netc_model *model, float *persist, const char *path,
                      char *error, size_t cap);
int netc_weights_save(const struct netc_model *model, const float *persist, const char *path,
                      char *error, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* NETC_CORE_H */
