// Idx.cpp - IDX files through zlib, which reads plain files transparently.
#include "Idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sys/stat.h>

namespace netc::rt {

namespace {

struct GzClose {
  void operator()(gzFile f) const { gzclose(f); }
};

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

/// Reads exactly `size` bytes, or throws: a short read is a truncated file.
void readExactly(gzFile f, void *out, size_t size, const std::string &path, const char *what) {
  auto *p = static_cast<unsigned char *>(out);
  while (size > 0) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(size, 1u << 30));
    int n = gzread(f, p, chunk);
    if (n < 0) {
      int code = 0;
      const char *msg = gzerror(f, &code);
      throw Error("'" + path + "' cannot be read (" + what + "): " + msg);
    }
    if (n == 0)
      throw Error("'" + path + "' is truncated: it ends inside the " + what);
    p += n;
    size -= static_cast<size_t>(n);
  }
}

} // namespace

IdxArray readIdx(const std::string &path) {
  std::unique_ptr<gzFile_s, GzClose> f(gzopen(path.c_str(), "rb"));
  if (!f)
    throw Error("cannot read '" + path + "': " + std::strerror(errno ? errno : ENOENT));
  unsigned char magic[4];
  readExactly(f.get(), magic, 4, path, "header");
  if (magic[0] != 0 || magic[1] != 0)
    throw Error("'" + path + "' is not an IDX file (bad magic number)");
  if (magic[2] != 0x08) {
    char type[8];
    std::snprintf(type, sizeof type, "0x%02x", magic[2]);
    throw Error("'" + path + "' holds IDX type " + type + "; netc reads unsigned bytes (type 0x08)");
  }
  if (magic[3] == 0 || magic[3] > 4)
    throw Error("'" + path + "' has " + std::to_string(magic[3]) +
                " dimensions; expected 1 to 4");
  IdxArray a;
  uint64_t total = 1;
  for (int i = 0; i < magic[3]; ++i) {
    unsigned char b[4];
    readExactly(f.get(), b, 4, path, "header");
    uint32_t d = (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
    if (d == 0)
      throw Error("'" + path + "' has a dimension of size 0");
    a.dims.push_back(d);
    total *= d;
    if (total > (uint64_t(1) << 34))
      throw Error("'" + path + "' claims more than 16 GiB of data");
  }
  // Grow with the data actually read, so a lying header cannot make us
  // allocate more than the file holds.
  constexpr size_t kChunk = size_t(1) << 24;
  while (a.data.size() < total) {
    size_t want = std::min<size_t>(kChunk, total - a.data.size());
    size_t at = a.data.size();
    a.data.resize(at + want);
    readExactly(f.get(), a.data.data() + at, want, path, "data");
  }
  unsigned char extra;
  if (gzread(f.get(), &extra, 1) > 0)
    throw Error("'" + path + "' is longer than its header says");
  return a;
}

LabeledImages loadLabeledImages(const std::string &imagesPath, const std::string &labelsPath,
                                int classes) {
  IdxArray images = readIdx(imagesPath);
  IdxArray labels = readIdx(labelsPath);
  if (images.dims.size() != 3)
    throw Error("'" + imagesPath + "' should hold images [count, rows, cols], it has " +
                std::to_string(images.dims.size()) + " dimensions");
  if (labels.dims.size() != 1)
    throw Error("'" + labelsPath + "' should hold labels [count], it has " +
                std::to_string(labels.dims.size()) + " dimensions");
  if (images.dims[0] != labels.dims[0])
    throw Error("'" + imagesPath + "' has " + std::to_string(images.dims[0]) + " images but '" +
                labelsPath + "' has " + std::to_string(labels.dims[0]) + " labels");
  for (size_t i = 0; i < labels.data.size(); ++i)
    if (labels.data[i] >= classes)
      throw Error("'" + labelsPath + "': label " + std::to_string(labels.data[i]) + " of item " +
                  std::to_string(i) + " is not below the number of classes (" +
                  std::to_string(classes) + ")");
  LabeledImages out;
  out.count = images.dims[0];
  out.rows = images.dims[1];
  out.cols = images.dims[2];
  out.pixels = std::move(images.data);
  out.labels = std::move(labels.data);
  return out;
}

std::string findIdxFile(const std::string &dir, const std::string &name) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error("the data directory '" + dir + "' does not exist (get the digits with "
                "scripts/get-mnist.py, or give --data DIR)");
  std::string plain = dir + "/" + name;
  if (exists(plain))
    return plain;
  if (exists(plain + ".gz"))
    return plain + ".gz";
  throw Error("no '" + name + "' (or '" + name + ".gz') in '" + dir + "'");
}

} // namespace netc::rt
