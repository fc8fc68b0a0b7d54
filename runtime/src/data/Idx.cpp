// Idx.cpp - IDX files through zlib, which reads plain files transparently,
// and the idx data source.
#include "Idx.h"
#include "Sources.h"

#include "netc/runtime.h"

#include <zlib.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cmath>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

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

size_t IdxArray::elementBytes() const {
  switch (type) {
  case IdxType::U8:
  case IdxType::I8:
    return 1;
  case IdxType::I16:
    return 2;
  case IdxType::I32:
  case IdxType::F32:
    return 4;
  case IdxType::F64:
    return 8;
  }
  return 1;
}

int64_t IdxArray::itemSize() const {
  int64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i)
    n *= dims[i];
  return n;
}

double IdxArray::at(size_t i) const {
  const uint8_t *p = data.data() + i * elementBytes();
  auto load = [p](auto v) {
    std::memcpy(&v, p, sizeof v);
    return static_cast<double>(v);
  };
  switch (type) {
  case IdxType::U8:
    return *p;
  case IdxType::I8:
    return load(int8_t());
  case IdxType::I16:
    return load(int16_t());
  case IdxType::I32:
    return load(int32_t());
  case IdxType::F32:
    return load(float());
  case IdxType::F64:
    return load(double());
  }
  return 0;
}

namespace {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NETC_SCALE_BYTES_AVX2 1
/// scaleBytes' first `count` rounded down to 8, with AVX2 and FMA: q = x ·
/// (1/255) corrected by the residual x - 255·q (exact in one FMA) as
/// q + residual · (1/255), which gives x / 255's bits for every byte value
/// (IdxTest checks all 256). The division's divider gave one float per
/// 0.75 cycles, most of the batch fill's time.
__attribute__((target("avx2,fma"))) size_t scaleBytesAvx2(const uint8_t *src, float *dst,
                                                          size_t count) {
  const __m256 reciprocal = _mm256_set1_ps(1.0f / 255.0f), divisor = _mm256_set1_ps(255.0f);
  size_t p = 0;
  for (; p + 8 <= count; p += 8) {
    __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(src + p));
    __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
    __m256 q = _mm256_mul_ps(x, reciprocal);
    __m256 residual = _mm256_fnmadd_ps(q, divisor, x);
    _mm256_storeu_ps(dst + p, _mm256_fmadd_ps(residual, reciprocal, q));
  }
  return p;
}
#endif

} // namespace

// value / 255 as torchvision's ToTensor computes it (a division: times
// 1/255 differs in the last bit for 126 of the 256 values): with AVX2 and
// FMA where the CPU has them, else 16 pixels at a time with SSE2, which
// every x86-64 CPU has; the scalar loop elsewhere.
void scaleBytes(const uint8_t *src, float *dst, size_t count, bool wide) {
  size_t p = 0;
#if defined(NETC_SCALE_BYTES_AVX2)
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (wide && avx2)
    p = scaleBytesAvx2(src, dst, count);
#endif
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  const __m128 divisor = _mm_set1_ps(255.0f);
  for (; p + 16 <= count; p += 16) {
    __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + p));
    __m128i halves[2] = {_mm_unpacklo_epi8(bytes, zero), _mm_unpackhi_epi8(bytes, zero)};
    for (int h = 0; h < 2; ++h) {
      __m128i lo = _mm_unpacklo_epi16(halves[h], zero), hi = _mm_unpackhi_epi16(halves[h], zero);
      _mm_storeu_ps(dst + p + 8 * h, _mm_div_ps(_mm_cvtepi32_ps(lo), divisor));
      _mm_storeu_ps(dst + p + 8 * h + 4, _mm_div_ps(_mm_cvtepi32_ps(hi), divisor));
    }
  }
#endif
  // The rest (under 16 after SSE2), by pointers: GCC's loop analysis
  // warned about index overflow on the indexed form.
  for (const uint8_t *end = src + count, *s = src + p; s < end; ++s)
    dst[s - src] = static_cast<float>(*s) / 255.0f;
}

namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

bool knownType(uint8_t t) {
  return t == 0x08 || t == 0x09 || t == 0x0b || t == 0x0c || t == 0x0d || t == 0x0e;
}

} // namespace

void IdxArray::itemToFloat(int64_t item, float *out) const {
  auto size = static_cast<size_t>(itemSize());
  size_t first = static_cast<size_t>(item) * size;
  if (type == IdxType::U8) {
    scaleBytes(data.data() + first, out, size);
    return;
  }
  if (type == IdxType::F32) { // as they are (a course CNN batch: 1.5 ms through at())
    std::memcpy(out, data.data() + first * sizeof(float), size * sizeof(float));
    return;
  }
  for (size_t i = 0; i < size; ++i)
    out[i] = static_cast<float>(at(first + i));
}

IdxArray readIdx(const std::string &path) {
  struct stat st;
  bool known = ::stat(path.c_str(), &st) == 0;
  if (known && !S_ISREG(st.st_mode))
    throw Error("'" + path +
                "' is not a regular file (a folder, a pipe or a device?); give an "
                "IDX file");
  std::unique_ptr<gzFile_s, GzClose> f(gzopen(path.c_str(), "rb"));
  if (!f)
    throw Error("cannot read '" + path + "': " + std::strerror(errno ? errno : ENOENT));
  unsigned char magic[4];
  readExactly(f.get(), magic, 4, path, "header");
  if (magic[0] != 0 || magic[1] != 0)
    throw Error("'" + path + "' is not an IDX file (bad magic number)");
  if (!knownType(magic[2])) {
    char type[8];
    std::snprintf(type, sizeof type, "0x%02x", magic[2]);
    throw Error("'" + path + "' holds IDX type " + type +
                ", which is none of u8 (0x08), i8 (0x09), i16 (0x0b), i32 (0x0c), f32 (0x0d), "
                "f64 (0x0e)");
  }
  if (magic[3] == 0)
    throw Error("'" + path + "' has no dimensions");
  IdxArray a;
  a.type = static_cast<IdxType>(magic[2]);
  uint64_t total = a.elementBytes();
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
  // A gzipped file that would grow more than 200 times is a decompression
  // bomb, not a data set (MNIST's grow 5 times), and no file may hold more
  // than the machine's memory.
  if (!gzdirect(f.get()) && known &&
      total > 200 * static_cast<uint64_t>(st.st_size) + (1u << 20))
    throw Error("'" + path + "' would decompress to " + std::to_string(total) + " bytes from " +
                std::to_string(st.st_size) +
                ", more than 200 times its size: refused as a possible decompression bomb "
                "(gunzip it first if it is real data)");
  long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
  if (pages > 0 && pageSize > 0 &&
      total > static_cast<uint64_t>(pages) * static_cast<uint64_t>(pageSize))
    throw Error("'" + path + "' holds " + std::to_string(total) +
                " bytes of data, more than this machine's memory");
  // Grow with the data actually read, so a lying header cannot make us
  // use more memory than the file holds; reserved at once (address space,
  // not memory, until read into) where the file's size vouches for the
  // header: grown by reallocation, the old and the new buffer were both
  // there at the end (Fashion-MNIST's training set: peak RSS 84 -> 64 MB).
  uint64_t vouched = gzdirect(f.get()) ? static_cast<uint64_t>(st.st_size)
                                       : 200 * static_cast<uint64_t>(st.st_size) + (1u << 20);
  if (known && total <= vouched)
    a.data.reserve(total);
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
  // Big-endian on disk; x86 and most hosts are little-endian.
  if (size_t w = a.elementBytes(); w > 1 && std::endian::native == std::endian::little)
    for (size_t i = 0; i < a.data.size(); i += w)
      std::reverse(a.data.begin() + static_cast<ptrdiff_t>(i),
                   a.data.begin() + static_cast<ptrdiff_t>(i + w));
  return a;
}

// ---- the data source ---------------------------------------------------------

IdxDataset::IdxDataset(std::vector<FieldLayout> fields, IdxArray inputs, IdxArray targets,
                       int64_t classes, const std::string &inputsPath,
                       const std::string &targetsPath)
    : Dataset(std::move(fields)), inputs_(std::move(inputs)), targets_(std::move(targets)) {
  const auto &f = this->fields();
  if (f.size() != 2 || f[0].role == f[1].role)
    throw Error("idx data has one input and one target field");
  inputField_ = f[0].role == "input" ? 0 : 1;
  targetField_ = 1 - inputField_;
  const FieldLayout &in = f[inputField_], &out = f[targetField_];
  if (inputs_.dims[0] != targets_.dims[0])
    throw Error("'" + inputsPath + "' has " + std::to_string(inputs_.dims[0]) + " items but '" +
                targetsPath + "' has " + std::to_string(targets_.dims[0]));
  count_ = inputs_.dims[0];
  auto shape = [](const IdxArray &a) {
    std::string s;
    for (size_t i = 1; i < a.dims.size(); ++i)
      s += (s.empty() ? "" : " x ") + std::to_string(a.dims[i]);
    return s.empty() ? std::string("single values") : s;
  };
  if (inputs_.itemSize() != in.numel)
    throw Error("the items of '" + inputsPath + "' are " + shape(inputs_) + " (" +
                std::to_string(inputs_.itemSize()) + " values); the model's '" + in.name +
                "' takes " + std::to_string(in.numel));
  if (targets_.itemSize() != out.numel)
    throw Error("the items of '" + targetsPath + "' are " + shape(targets_) + "; the model's '" +
                out.name + "' takes " + counted(out.numel, "value") + " per example");
  if (!out.integer)
    return;
  for (size_t i = 0; i < targets_.data.size() / targets_.elementBytes(); ++i) {
    double v = targets_.at(i);
    if (v != std::floor(v) || v < 0 || v >= static_cast<double>(classes))
      throw Error("'" + targetsPath + "': label " + number(v) + " of item " + std::to_string(i) +
                  " is not a class of this model (0 to " + std::to_string(classes - 1) + ")");
  }
}

int64_t IdxDataset::label(int64_t row, size_t) const {
  return static_cast<int64_t>(targets_.at(static_cast<size_t>(row)));
}

/// One fill, split into groups of examples for netc_rt_parallel_for.
struct IdxFill {
  const IdxDataset *data;
  const int64_t *rows;
  int64_t n;
  void *const *out;
  static constexpr int64_t kGroup = 32; ///< examples per chunk

  static void chunk(const void *args, int64_t chunk) {
    const auto &job = *static_cast<const IdxFill *>(args);
    const IdxDataset &d = *job.data;
    const IdxArray &in = d.inputs_, &target = d.targets_;
    int64_t width = in.itemSize(), targetWidth = target.itemSize();
    size_t stride = static_cast<size_t>(width) * in.elementBytes();
    bool integer = d.fields()[d.targetField_].integer;
    auto *inputs = static_cast<float *>(job.out[d.inputField_]);
    int64_t end = std::min(job.n, (chunk + 1) * kGroup);
    // Shuffled rows are scattered over the set, each on pages of its own:
    // first one load from every page the group's rows are on, independent
    // loads whose page walks overlap, then the copies. MLP epoch on
    // Fashion-MNIST within noise to 7% shorter on 1 and 2 threads; the
    // prefetches a few rows ahead still pay beside it.
    unsigned touched = 0;
    for (int64_t i = chunk * kGroup; i < end && stride > 0; ++i) {
      const uint8_t *row = in.data.data() + static_cast<size_t>(job.rows[i]) * stride;
      for (size_t at = 0; at < stride; at += 4096)
        touched += row[at];
      touched += row[stride - 1];
    }
    asm volatile("" ::"r"(touched)); // the loads are the point, not the sum
    for (int64_t i = chunk * kGroup; i < end; ++i) {
      if (i + 4 < end)
        for (size_t line = 0; line < stride; line += 64)
          __builtin_prefetch(in.data.data() + static_cast<size_t>(job.rows[i + 4]) * stride + line);
      in.itemToFloat(job.rows[i], inputs + i * width);
      for (int64_t k = 0; k < targetWidth; ++k) {
        auto at = static_cast<size_t>(job.rows[i] * targetWidth + k);
        if (integer)
          static_cast<int64_t *>(job.out[d.targetField_])[i * targetWidth + k] =
              static_cast<int64_t>(target.at(at));
        else
          static_cast<float *>(job.out[d.targetField_])[i * targetWidth + k] =
              static_cast<float>(target.at(at));
      }
    }
  }
};

void IdxDataset::fill(const int64_t *rows, int64_t n, void *const *out) const {
  IdxFill job{this, rows, n, out};
  netc_rt_parallel_for(IdxFill::chunk, &job, (n + IdxFill::kGroup - 1) / IdxFill::kGroup);
}

std::string findIdxFile(const std::string &dir, const std::string &name, const std::string &hint) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error("the data directory '" + dir + "' does not exist (" + hint + "give --data DIR)");
  std::string plain = dir + "/" + name;
  if (exists(plain))
    return plain;
  if (exists(plain + ".gz"))
    return plain + ".gz";
  throw Error("no '" + name + "' (or '" + name + ".gz') in '" + dir + "'");
}

} // namespace netc::rt

namespace netc::rt {

// idx(dir, train_images, train_labels, test_images, test_labels, ...):
// the four files (each maybe .gz) in `dir`; without test files, all of it
// is training data (a test fraction then splits it, see openData).
Splits openIdx(const ModelInfo &m, const std::string &dir) {
  const char *hint = m.dataSource == "mnist" ? "get the digits with scripts/get-mnist.py, or " : "";
  // Looked up one by one, in this order, so the first missing file is the
  // one reported.
  bool test = !m.text("test_images").empty();
  std::vector<std::string> paths;
  for (const char *key : {"train_images", "train_labels", "test_images", "test_labels"})
    if (test || std::string_view(key).substr(0, 5) == "train")
      paths.push_back(findIdxFile(dir, m.text(key), hint));
  int64_t classes = classCount(m);
  auto open = [&](size_t images, size_t labels) {
    return std::make_shared<IdxDataset>(fieldLayouts(m), readIdx(paths[images]),
                                        readIdx(paths[labels]), classes, paths[images],
                                        paths[labels]);
  };
  Splits s;
  s.train = open(0, 1);
  if (test)
    s.test = open(2, 3);
  s.description = std::to_string(s.train->size()) + " training" +
                  (test ? ", " + counted(s.test->size(), "test example") : " examples");
  return s;
}

} // namespace netc::rt
