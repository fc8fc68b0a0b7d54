/* AtomicFile.c - writing a file so that a reader only ever sees the old
 * content or the whole new one, and nobody else's file is touched (Core.h). */
#define _GNU_SOURCE
#include "Core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* 64 random bits, for a name nobody can predict. */
static uint64_t random_bits(void) {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
    r ^= (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&r;
  return r;
}

int netc_write_all(int fd, const void *data, size_t size) {
  const char *p = data;
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? errno : EIO;
    p += n;
    size -= (size_t)n;
  }
  return 0;
}

int netc_atomic_begin(const char *path, char *tmp, size_t tmp_size, int *fd) {
  struct stat st;
  if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
    return NETC_NOT_REGULAR;
  for (int attempt = 0; attempt < 16; ++attempt) {
    int len = snprintf(tmp, tmp_size, "%s.netc-%016llx.tmp", path,
                       (unsigned long long)random_bits());
    if (len < 0 || (size_t)len >= tmp_size)
      return ENAMETOOLONG;
    *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (*fd >= 0)
      return 0;
    if (errno != EEXIST)
      return errno;
  }
  return EEXIST;
}

void netc_atomic_abort(int fd, const char *tmp) {
  close(fd);
  unlink(tmp);
}

/* The folder of `path` into dir[size]. */
static void folder_of(const char *path, char *dir, size_t size) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(dir, size, ".");
    return;
  }
  size_t len = slash == path ? 1 : (size_t)(slash - path);
  snprintf(dir, size, "%.*s", (int)len, path);
}

int netc_atomic_commit(int fd, const char *tmp, const char *path) {
  if (fsync(fd) != 0) {
    int err = errno;
    netc_atomic_abort(fd, tmp);
    return err;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    int err = errno;
    unlink(tmp);
    return err;
  }
  char dir[4096];
  folder_of(path, dir, sizeof dir);
  int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0)
    return 0;
  int rc = fsync(d), err = errno;
  close(d);
  return rc != 0 && err != EINVAL ? err : 0; /* some file systems cannot sync a folder */
}
