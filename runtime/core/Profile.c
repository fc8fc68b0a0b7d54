/* Profile.c - the kernel timer behind --profile (netc.h, runtime.h): the
 * generated train_step marks where each kernel starts and where the step
 * ends; each interval is added to the kernel that was running. The clock
 * is CLOCK_MONOTONIC (a vDSO call, ~20 ns): kernels of a step take
 * microseconds at least. */
#define _POSIX_C_SOURCE 200809L
#include "netc/netc.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

int netc_rt_profiling;

static struct {
  int32_t kernels;
  double *seconds;
  int64_t *calls;
  int32_t running; /* the kernel since the last mark, or -1 */
  struct timespec since;
} profile = {0, NULL, NULL, -1, {0, 0}};

int netc_profile_start(int32_t kernels) {
  netc_profile_stop();
  if (kernels < 0)
    return EINVAL;
  free(profile.seconds);
  free(profile.calls);
  profile.seconds = calloc((size_t)kernels + 1, sizeof(double));
  profile.calls = calloc((size_t)kernels + 1, sizeof(int64_t));
  if (!profile.seconds || !profile.calls)
    return ENOMEM;
  profile.kernels = kernels;
  profile.running = -1;
  netc_rt_profiling = 1;
  return 0;
}

void netc_profile_stop(void) { netc_rt_profiling = 0; }

int netc_profile_kernel(int32_t k, double *seconds, int64_t *calls) {
  if (k < 0 || k >= profile.kernels)
    return EINVAL;
  *seconds = profile.seconds[k];
  *calls = profile.calls[k];
  return 0;
}

void netc_rt_profile_mark(int32_t kernel) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (profile.running >= 0) {
    profile.seconds[profile.running] +=
        (double)(now.tv_sec - profile.since.tv_sec) + 1e-9 * (double)(now.tv_nsec - profile.since.tv_nsec);
    profile.calls[profile.running] += 1;
  }
  profile.running = kernel >= 0 && kernel < profile.kernels ? kernel : -1;
  profile.since = now;
}
