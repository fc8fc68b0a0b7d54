// AtomicFile.cpp - see AtomicFile.h.
#include "AtomicFile.h"

#include "ModelInfo.h"

#include "Core.h"

#include <cstring>

namespace netc::rt {

namespace {

[[noreturn]] void fail(const std::string &path, int err) {
  throw Error("cannot write '" + path + "': " + std::strerror(err));
}

} // namespace

void writeAll(int fd, const void *data, size_t size, const std::string &path) {
  if (int err = netc_write_all(fd, data, size))
    fail(path, err);
}

void writeFileAtomically(const std::string &path, const std::function<void(int fd)> &write) {
  std::string tmp(path.size() + 64, '\0');
  int fd = -1;
  int err = netc_atomic_begin(path.c_str(), tmp.data(), tmp.size(), &fd);
  if (err == NETC_NOT_REGULAR)
    throw Error("'" + path + "' is not a regular file; it is not replaced");
  if (err)
    fail(path, err);
  try {
    write(fd);
  } catch (...) {
    netc_atomic_abort(fd, tmp.c_str());
    throw;
  }
  if (int err = netc_atomic_commit(fd, tmp.c_str(), path.c_str()))
    fail(path, err);
}

} // namespace netc::rt
