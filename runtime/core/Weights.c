/* Weights.c - a model's parameters and buffers to and from safetensors files
 * (https://github.com/huggingface/safetensors: an 8-byte little-endian
 * header length, a JSON header, the raw tensor data), for the C library.
 *
 * The files are the trainer's (runtime/src/Safetensors.cpp writes the same
 * bytes for the same values: its metadata, compact JSON in the same order,
 * padding to 8 bytes). Reading parses only the JSON safetensors headers
 * use: an object of tensors {dtype, shape, data_offsets} and __metadata__,
 * with strings, non-negative integers and nesting up to NETC_MAX_NESTING
 * levels; everything is checked against the model before a value is
 * placed. No JSON library: the core library depends on libc alone. */
#define _GNU_SOURCE
#include "Core.h"
#include "netc/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failf(char *error, size_t cap, int code, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(error, cap, format, args);
  va_end(args);
  return code;
}

/* ---- writing ------------------------------------------------------------- */

typedef struct {
  char *data;
  size_t size, cap;
  bool failed;
} text;

static void append(text *t, const char *s, size_t n) {
  if (t->failed)
    return;
  if (t->size + n + 1 > t->cap) {
    size_t cap = (t->size + n + 1) * 2;
    char *grown = realloc(t->data, cap);
    if (!grown) {
      t->failed = true;
      return;
    }
    t->data = grown;
    t->cap = cap;
  }
  memcpy(t->data + t->size, s, n);
  t->size += n;
  t->data[t->size] = '\0';
}

static void append_text(text *t, const char *s) { append(t, s, strlen(s)); }

static void appendf(text *t, const char *format, ...) {
  char buffer[64];
  va_list args;
  va_start(args, format);
  int n = vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  append(t, buffer, (size_t)n);
}

/* A JSON string, escaped as the trainer's JSON library writes it. */
static void append_string(text *t, const char *s) {
  append(t, "\"", 1);
  for (; *s; ++s) {
    unsigned char ch = (unsigned char)*s;
    const char *escape = ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : ch == '\n' ? "\\n"
                         : ch == '\t' ? "\\t" : ch == '\r' ? "\\r" : ch == '\b' ? "\\b"
                         : ch == '\f' ? "\\f" : NULL;
    if (escape)
      append(t, escape, 2);
    else if (ch < 0x20)
      appendf(t, "\\u%04x", ch);
    else
      append(t, s, 1);
  }
  append(t, "\"", 1);
}

static bool saved(const netc_tensor *t) { return t->kind != NETC_STATE; }

int netc_weights_save(const netc_model *m, const float *persist, const char *path, char *error,
                      size_t cap) {
  for (int32_t i = 0; i < m->tensor_count; ++i) {
    const netc_tensor *t = &m->tensors[i];
    for (int64_t k = 0; saved(t) && k < t->numel; ++k)
      if (!isfinite(persist[t->offset + k]))
        return failf(error, cap, EDOM,
                     "'%s' holds a non-finite value (%g at element %lld); '%s' was not written",
                     t->name, (double)persist[t->offset + k], (long long)k, path);
  }
  text h = {0};
  append_text(&h, "{\"__metadata__\":{\"format\":\"pt\",\"model\":");
  append_string(&h, m->name);
  append_text(&h, ",\"producer\":\"netc\"}");
  uint64_t offset = 0;
  for (int32_t i = 0; i < m->tensor_count; ++i) {
    const netc_tensor *t = &m->tensors[i];
    if (!saved(t))
      continue;
    uint64_t bytes = (uint64_t)t->numel * (t->integer ? 8 : 4);
    append_text(&h, ",");
    append_string(&h, t->name);
    appendf(&h, ":{\"dtype\":\"%s\",\"shape\":[", t->integer ? "I64" : "F32");
    for (int32_t d = 0; d < t->rank; ++d)
      appendf(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
    appendf(&h, "],\"data_offsets\":[%llu,", (unsigned long long)offset);
    appendf(&h, "%llu]}", (unsigned long long)(offset + bytes));
    offset += bytes;
  }
  append_text(&h, "}");
  while (!h.failed && h.size % 8)
    append_text(&h, " "); /* data starts 8-byte aligned */
  if (h.failed) {
    free(h.data);
    return failf(error, cap, ENOMEM, "cannot write '%s': out of memory", path);
  }
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i)
    prefix[i] = (unsigned char)((uint64_t)h.size >> (8 * i));

  size_t tmp_size = strlen(path) + 64;
  char *tmp = malloc(tmp_size);
  int fd = -1, err = tmp ? netc_atomic_begin(path, tmp, tmp_size, &fd) : ENOMEM;
  if (err == 0) {
    err = netc_write_all(fd, prefix, 8);
    err = err ? err : netc_write_all(fd, h.data, h.size);
    for (int32_t i = 0; err == 0 && i < m->tensor_count; ++i) {
      const netc_tensor *t = &m->tensors[i];
      if (!saved(t))
        continue;
      if (!t->integer) {
        err = netc_write_all(fd, persist + t->offset, (size_t)t->numel * 4); /* little-endian */
        continue;
      }
      for (int64_t k = 0; err == 0 && k < t->numel; ++k) {
        int64_t v = (int64_t)persist[t->offset + k];
        err = netc_write_all(fd, &v, 8);
      }
    }
    if (err)
      netc_atomic_abort(fd, tmp);
    else
      err = netc_atomic_commit(fd, tmp, path);
  }
  free(tmp);
  free(h.data);
  if (err == NETC_NOT_REGULAR)
    return failf(error, cap, EEXIST, "'%s' is not a regular file; it is not replaced", path);
  if (err)
    return failf(error, cap, err, "cannot write '%s': %s", path, strerror(err));
  return 0;
}

/* ---- reading ------------------------------------------------------------- */

typedef struct {
  const char *p, *end;
} cursor;

static void skip_blanks(cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    ++c->p;
}

static bool accept(cursor *c, char ch) {
  skip_blanks(c);
  if (c->p < c->end && *c->p == ch) {
    ++c->p;
    return true;
  }
  return false;
}

static int hex_digit(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* A JSON string, decoded into a malloc'd, NUL-terminated buffer (*out may
 * be NULL to skip it); false if malformed. */
static bool parse_string(cursor *c, char **out) {
  if (!accept(c, '"'))
    return false;
  const char *start = c->p;
  while (c->p < c->end && *c->p != '"')
    c->p += *c->p == '\\' ? 2 : 1;
  if (c->p >= c->end)
    return false;
  const char *stop = c->p++;
  if (!out)
    return true;
  char *s = malloc((size_t)(stop - start) + 1), *w = s;
  if (!s)
    return false;
  for (const char *r = start; r < stop; ++r) {
    if (*r != '\\') {
      *w++ = *r;
      continue;
    }
    char e = *++r;
    const char *plain = strchr("\"\\/bfnrt", e);
    if (e && plain) {
      *w++ = "\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"];
      continue;
    }
    if (e != 'u' || stop - r < 5) {
      free(s);
      return false;
    }
    unsigned code = 0;
    for (int k = 1; k <= 4; ++k) {
      int d = hex_digit(r[k]);
      if (d < 0) {
        free(s);
        return false;
      }
      code = code * 16 + (unsigned)d;
    }
    r += 4;
    /* Names compared with the model's are ASCII; other code points are
     * kept as UTF-8 (surrogates as they come: such a name matches none). */
    if (code < 0x80) {
      *w++ = (char)code;
    } else if (code < 0x800) {
      *w++ = (char)(0xC0 | code >> 6);
      *w++ = (char)(0x80 | (code & 0x3F));
    } else {
      *w++ = (char)(0xE0 | code >> 12);
      *w++ = (char)(0x80 | ((code >> 6) & 0x3F));
      *w++ = (char)(0x80 | (code & 0x3F));
    }
  }
  *w = '\0';
  *out = s;
  return true;
}

static bool parse_uint(cursor *c, uint64_t *v) {
  skip_blanks(c);
  if (c->p >= c->end || *c->p < '0' || *c->p > '9')
    return false;
  *v = 0;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    if (*v > (1ull << 50))
      return false;
    *v = *v * 10 + (uint64_t)(*c->p++ - '0');
  }
  return true;
}

/* Skips any JSON value nested at most `depth` more levels. */
static bool skip_value(cursor *c, int depth) {
  skip_blanks(c);
  if (c->p >= c->end || depth < 0)
    return false;
  char open = *c->p;
  if (open == '"')
    return parse_string(c, NULL);
  if (open == '{' || open == '[') {
    ++c->p;
    char close = open == '{' ? '}' : ']';
    if (accept(c, close))
      return true;
    do {
      if (open == '{' && (!parse_string(c, NULL) || !accept(c, ':')))
        return false;
      if (!skip_value(c, depth - 1))
        return false;
    } while (accept(c, ','));
    return accept(c, close);
  }
  const char *start = c->p;
  while (c->p < c->end && strchr("+-.0123456789eEtruefalsn", *c->p))
    ++c->p;
  return c->p > start;
}

typedef struct {
  const char *path;
  char *error;
  size_t cap;
} context;

static int invalid(const context *x, const char *what, const char *name) {
  return failf(x->error, x->cap, EINVAL, "'%s' is not a valid safetensors file: %s%s%s", x->path,
               what, name ? " " : "", name ? name : "");
}

/* One tensor's entry {dtype, shape, data_offsets}; other keys skipped. */
typedef struct {
  char *dtype;
  int64_t shape[NETC_MAX_NESTING * 4];
  int rank;
  bool too_many_dims;
  uint64_t begin, end;
  bool has_shape, has_offsets;
} entry;

static bool parse_entry(cursor *c, entry *e) {
  if (!accept(c, '{'))
    return false;
  if (accept(c, '}'))
    return true;
  do {
    char *key = NULL;
    if (!parse_string(c, &key) || !accept(c, ':')) {
      free(key);
      return false;
    }
    bool ok;
    if (!strcmp(key, "dtype") && !e->dtype) {
      ok = parse_string(c, &e->dtype);
    } else if (!strcmp(key, "shape")) {
      e->has_shape = ok = accept(c, '[');
      e->rank = 0;
      if (ok && !accept(c, ']')) {
        do {
          uint64_t d;
          ok = parse_uint(c, &d) && d <= (1ull << 40);
          if (e->rank < (int)(sizeof e->shape / sizeof e->shape[0]))
            e->shape[e->rank++] = (int64_t)d;
          else
            e->too_many_dims = true;
        } while (ok && accept(c, ','));
        ok = ok && accept(c, ']');
      }
    } else if (!strcmp(key, "data_offsets")) {
      e->has_offsets = ok = accept(c, '[') && parse_uint(c, &e->begin) && accept(c, ',') &&
                            parse_uint(c, &e->end) && accept(c, ']');
    } else {
      ok = skip_value(c, NETC_MAX_NESTING - 2);
    }
    free(key);
    if (!ok)
      return false;
  } while (accept(c, ','));
  return accept(c, '}');
}

static const netc_tensor *find_tensor(const netc_model *m, const char *name) {
  for (int32_t i = 0; i < m->tensor_count; ++i)
    if (saved(&m->tensors[i]) && !strcmp(m->tensors[i].name, name))
      return &m->tensors[i];
  return NULL;
}

static const char *kind_name(const netc_tensor *t) {
  return t->kind == NETC_PARAMETER ? "parameter" : "buffer";
}

/* "[256, 784]" into out[cap]. */
static const char *shape_text(const int64_t *shape, int rank, char *out, size_t cap) {
  size_t n = (size_t)snprintf(out, cap, "[");
  for (int d = 0; d < rank && n < cap; ++d)
    n += (size_t)snprintf(out + n, cap - n, d ? ", %lld" : "%lld", (long long)shape[d]);
  if (n < cap)
    snprintf(out + n, cap - n, "]");
  return out;
}

/* Checks `e` against the model's tensor `name` and reads its values into
 * `into` (a copy of persist): 0 or an error. */
static int place(const context *x, int fd, uint64_t data_start, uint64_t data_size,
                 const netc_model *m, const char *name, const entry *e, float *into,
                 bool *seen) {
  if (!e->dtype || !e->has_shape || !e->has_offsets)
    return invalid(x, "it lacks dtype, shape or data_offsets for tensor", name);
  const netc_tensor *t = find_tensor(m, name);
  if (!t)
    return failf(x->error, x->cap, EINVAL,
                 "'%s' has tensor '%s', which is not a parameter or buffer of this model", x->path,
                 name);
  if (seen[t - m->tensors])
    return invalid(x, "it names twice the tensor", name);
  seen[t - m->tensors] = true;
  const char *dtype = t->integer ? "I64" : "F32";
  if (strcmp(e->dtype, dtype))
    return failf(x->error, x->cap, EINVAL, "'%s': tensor '%s' is %s, the model's %s is %s",
                 x->path, name, e->dtype, kind_name(t), dtype);
  bool same = !e->too_many_dims && e->rank == t->rank;
  for (int d = 0; same && d < t->rank; ++d)
    same = e->shape[d] == t->shape[d];
  char have[256], want[256];
  if (!same)
    return failf(x->error, x->cap, EINVAL, "'%s': tensor '%s' has shape %s, the model needs %s",
                 x->path, name, shape_text(e->shape, e->rank, have, sizeof have),
                 shape_text(t->shape, t->rank, want, sizeof want));
  uint64_t width = t->integer ? 8 : 4;
  if (e->begin > e->end || e->end > data_size || e->end - e->begin != (uint64_t)t->numel * width)
    return invalid(x, "data_offsets outside the file or of the wrong size for tensor", name);
  for (int64_t k = 0; k < t->numel;) {
    union {
      float f[1024];
      int64_t i[512];
    } chunk;
    int64_t count = t->numel - k < 512 ? t->numel - k : 512;
    size_t bytes = (size_t)count * width;
    off_t at = (off_t)(data_start + e->begin + (uint64_t)k * width);
    if (pread(fd, &chunk, bytes, at) != (ssize_t)bytes)
      return failf(x->error, x->cap, EIO, "cannot read '%s': the data of tensor '%s'", x->path,
                   name);
    for (int64_t j = 0; j < count; ++j)
      into[t->offset + k + j] = t->integer ? (float)chunk.i[j] : chunk.f[j];
    k += count;
  }
  return 0;
}

/* Parses the header and reads every tensor into `into`. */
static int read_all(const context *x, int fd, const char *header, uint64_t length,
                    uint64_t data_size, const netc_model *m, float *into, bool *seen) {
  cursor c = {header, header + length};
  if (!accept(&c, '{'))
    return invalid(x, "the header is not a JSON object", NULL);
  if (accept(&c, '}'))
    goto done;
  do {
    char *name = NULL;
    if (!parse_string(&c, &name) || !accept(&c, ':')) {
      free(name);
      return invalid(x, "its header is not valid JSON", NULL);
    }
    int err = 0;
    if (!strcmp(name, "__metadata__")) {
      skip_blanks(&c);
      err = c.p < c.end && *c.p == '{' && skip_value(&c, NETC_MAX_NESTING - 1)
                ? 0
                : invalid(x, "__metadata__ is not an object", NULL);
    } else {
      entry e = {0};
      err = parse_entry(&c, &e) ? place(x, fd, 8 + length, data_size, m, name, &e, into, seen)
                                : invalid(x, "malformed entry for tensor", name);
      free(e.dtype);
    }
    free(name);
    if (err)
      return err;
  } while (accept(&c, ','));
  if (!accept(&c, '}'))
    return invalid(x, "its header is not valid JSON", NULL);
done:
  skip_blanks(&c);
  if (c.p != c.end)
    return invalid(x, "text after its header's JSON object", NULL);
  for (int32_t i = 0; i < m->tensor_count; ++i) {
    const netc_tensor *t = &m->tensors[i];
    char shape[256];
    if (saved(t) && !seen[i])
      return failf(x->error, x->cap, EINVAL, "'%s' has no tensor '%s' (the model's %s %s: %s%s)",
                   x->path, t->name, kind_name(t), t->name, t->integer ? "i64" : "f32",
                   shape_text(t->shape, t->rank, shape, sizeof shape));
  }
  return 0;
}

int netc_weights_load(const netc_model *m, float *persist, const char *path, char *error,
                      size_t cap) {
  context x = {path, error, cap};
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return failf(error, cap, EISDIR, "'%s' is a folder, not a safetensors file", path);
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
    return failf(error, cap, EINVAL,
                 "'%s' is not a regular file (a pipe or a device?); give a safetensors file",
                 path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return failf(error, cap, errno, "cannot read '%s': %s", path, strerror(errno));
  unsigned char prefix[8];
  uint64_t length = 0, size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
  int err = 0;
  if (size < 8 || pread(fd, prefix, 8, 0) != 8)
    err = invalid(&x, "it is too short", NULL);
  for (int i = 7; !err && i >= 0; --i)
    length = (length << 8) | prefix[i];
  if (!err && length > size - 8)
    err = invalid(&x, "the header length is larger than the file", NULL);
  if (!err && length > NETC_MAX_HEADER)
    err = invalid(&x, "its header is larger than 32 MB", NULL);
  char *header = err ? NULL : malloc(length + 1);
  float *copy = err ? NULL : malloc((size_t)m->persistent_floats * sizeof(float) + 1);
  bool *seen = err ? NULL : calloc((size_t)m->tensor_count + 1, sizeof(bool));
  if (!err && (!header || !copy || !seen))
    err = failf(error, cap, ENOMEM, "cannot read '%s': out of memory", path);
  if (!err && pread(fd, header, length, 8) != (ssize_t)length)
    err = failf(error, cap, EIO, "cannot read '%s': %s", path, strerror(errno));
  if (!err) {
    memcpy(copy, persist, (size_t)m->persistent_floats * sizeof(float));
    err = read_all(&x, fd, header, length, size - 8 - length, m, copy, seen);
  }
  if (!err)
    memcpy(persist, copy, (size_t)m->persistent_floats * sizeof(float));
  close(fd);
  free(header);
  free(copy);
  free(seen);
  return err;
}
