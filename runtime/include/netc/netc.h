/* netc/netc.h - the core library's C functions: the threads the generated
 * kernels run on. C, libc and pthreads only (runtime/core). */
#ifndef NETC_NETC_H
#define NETC_NETC_H

#include "netc/runtime.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The most threads netc_set_threads accepts. */
#define NETC_MAX_THREADS 1024

/* Threads for the kernels of every model in the process, the calling
 * thread included (1: none started). 0 or an errno code. */
int netc_set_threads(int threads);
int netc_threads(void);
/* The CPUs this process may run on. */
int netc_available_cores(void);
/* Chunks the worker threads have run since netc_set_threads. */
int64_t netc_worker_chunks(void);

#ifdef __cplusplus
}
#endif

#endif /* NETC_NETC_H */
