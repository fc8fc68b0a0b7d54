// AtomicFile.cpp - see AtomicFile.h.
#include "AtomicFile.h"

#include "ModelInfo.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace netc::rt {

namespace {

std::string directoryOf(const std::string &path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// 64 random bits as hex, for a name nobody can predict.
std::string randomSuffix() {
  uint64_t r = 0;
  if (::getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r))
    r ^= static_cast<uint64_t>(::getpid()) * 0x9e3779b97f4a7c15ull ^
         static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&r));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(r));
  return hex;
}

[[noreturn]] void fail(const std::string &path, int err) {
  throw Error("cannot write '" + path + "': " + std::strerror(err));
}

} // namespace

void writeAll(int fd, const void *data, size_t size, const std::string &path) {
  const char *p = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      fail(path, n < 0 ? errno : EIO);
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void writeFileAtomically(const std::string &path, const std::function<void(int fd)> &write) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw Error("'" + path + "' is not a regular file; it is not replaced");
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 16; ++attempt) {
    tmp = path + ".netc-" + randomSuffix() + ".tmp";
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST)
      fail(path, errno);
  }
  if (fd < 0)
    fail(path, EEXIST);
  try {
    write(fd);
    if (::fsync(fd) != 0)
      fail(path, errno);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(path, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(path, err);
  }
  int dir = ::open(directoryOf(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    int rc = ::fsync(dir);
    int err = errno;
    ::close(dir);
    if (rc != 0 && err != EINVAL) // some file systems cannot sync a directory
      fail(path, err);
  }
}

} // namespace netc::rt
