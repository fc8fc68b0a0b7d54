/* winograd_study.c - would Winograd F(2x2, 3x3) make the course CNN's
 * forward blocks faster than netc's implicit GEMM? A measurement, not part
 * of netc: one block (conv2d 3x3, stride 1, padding 2, + bias -> relu ->
 * max_pool2d(2)) on a batch of images, computed as
 *   1. the image copied into four parity planes (even/odd rows x columns,
 *      zero padding included), each G = PW + 1 wide, so that the 4 x 4
 *      input tile of every pooled position (ty, tx) is 16 contiguous runs
 *      over the "tile grid" index t = ty * G + tx (one dropped column per
 *      row, as netc's grids);
 *   2. V = B^T d B, vectorised over t: V[xi][c][t];
 *   3. for each block of 8 output channels x 48 grid cells: the 16 products
 *      M[xi] = U[xi] V[xi] (U = G g G^T, transformed weights, 8 x 3 register
 *      tiles, depth C) into an L1 buffer, then Y = A^T M A (2 x 2 outputs =
 *      one pooling window), + bias, relu, the window's first maximum and
 *      its offset, stored pooled (only pooled positions are computed: the
 *      floor pooling drops the last output row and column).
 * It checks its results against a direct convolution and prints
 * microseconds per image and the nominal GFLOP/s (2 * O * C * 9 * OH * OW
 * per image, what bench/run.sh counts). Compare with `--profile` of
 * examples/course_cnn.nn (kernels 2, 4 and 6: the same blocks with netc's
 * kernels) in the same minutes. Built with clang (GCC 12 spills the
 * register tiles: 2-3x slower):
 *   clang-19 -O2 -march=native -Wno-invalid-feature-combination -ffp-contract=off \
 *     bench/winograd_study.c -o winograd_study -lm && ./winograd_study [IMAGES] [ROUNDS] */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *alloc(size_t n) {
  float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
  memset(p, 0, n * sizeof(float));
  return p;
}

typedef struct {
  int c, o, h, w;          /* input channels, output channels, image */
  int oh, ow, ph, pw;      /* convolution output, pooled output */
  int g, rows, vec, cells; /* grid width, parity plane rows, vectors of t, 16 * vec */
} Shape;

static Shape shape(int c, int o, int h, int w) {
  Shape s = {c, o, h, w, h + 2, w + 2, (h + 2) / 2, (w + 2) / 2, 0, 0, 0, 0};
  s.g = s.pw + 1;
  s.vec = (s.ph * s.g + 15) / 16;
  s.cells = 16 * s.vec;
  s.rows = (s.cells + s.g + 1 + s.g - 1) / s.g + 1; /* reads reach t + G + 1 */
  return s;
}

/* U[xi][o][c] = (G g G^T)[xi / 4][xi % 4] */
static void transform_weights(const Shape *s, const float *wt, float *u) {
  static const float G[4][3] = {{1, 0, 0}, {.5f, .5f, .5f}, {.5f, -.5f, .5f}, {0, 0, 1}};
  for (int o = 0; o < s->o; ++o)
    for (int c = 0; c < s->c; ++c) {
      const float *g = wt + ((size_t)o * s->c + c) * 9;
      float t[4][3];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 3; ++j)
          t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
          u[((size_t)(4 * i + j) * s->o + o) * s->c + c] =
              t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
    }
}

/* Four parity planes per channel: plane (p, q) row yy column xx holds the
 * padded image's (2yy + p, 2xx + q), i.e. the image's (2yy + p - 2, 2xx + q - 2). */
static void parity_planes(const Shape *s, const float *img, float *planes) {
  size_t plane = (size_t)s->rows * s->g;
  memset(planes, 0, 4 * s->c * plane * sizeof(float));
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int c = 0; c < s->c; ++c)
    for (int y = 0; y < s->h; ++y) {
      /* padded row y + 2: plane row (y + 2) / 2 of parity (y + 2) % 2; the
       * image's column x is padded column x + 2: plane column x / 2 + 1 */
      int p = (y + 2) & 1, yy = (y + 2) >> 1;
      const float *src = img + ((size_t)c * s->h + y) * s->w;
      float *dst0 = planes + ((size_t)(2 * p) * s->c + c) * plane + (size_t)yy * s->g + 1;
      float *dst1 = planes + ((size_t)(2 * p + 1) * s->c + c) * plane + (size_t)yy * s->g + 1;
      for (int x = 0; x < s->w; x += 32) {
        int left = s->w - x;
        __mmask16 lo = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        __mmask16 hi = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
        __m512 a = _mm512_maskz_loadu_ps(lo, src + x), b = _mm512_maskz_loadu_ps(hi, src + x + 16);
        int evens = (left + 1) / 2 < 16 ? (left + 1) / 2 : 16, odds = left / 2 < 16 ? left / 2 : 16;
        _mm512_mask_storeu_ps(dst0 + x / 2, (__mmask16)((1u << evens) - 1),
                              _mm512_permutex2var_ps(a, even, b));
        _mm512_mask_storeu_ps(dst1 + x / 2, (__mmask16)((1u << odds) - 1),
                              _mm512_permutex2var_ps(a, odd, b));
      }
    }
}

/* V[xi][c][t] = (B^T d B)[xi / 4][xi % 4], d the 4 x 4 tile at grid cell t. */
static void transform_input(const Shape *s, const float *planes, float *v) {
  size_t plane = (size_t)s->rows * s->g;
  for (int c = 0; c < s->c; ++c)
    for (int k = 0; k < s->vec; ++k) {
      __m512 d[4][4], t[4][4];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
          d[i][j] = _mm512_loadu_ps(planes + ((size_t)(2 * (i & 1) + (j & 1)) * s->c + c) * plane +
                                    (i >> 1) * s->g + (j >> 1) + 16 * k);
      for (int j = 0; j < 4; ++j) {
        t[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
        t[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
        t[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
        t[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
      }
      for (int i = 0; i < 4; ++i) {
        __m512 r[4] = {_mm512_sub_ps(t[i][0], t[i][2]), _mm512_add_ps(t[i][1], t[i][2]),
                       _mm512_sub_ps(t[i][2], t[i][1]), _mm512_sub_ps(t[i][1], t[i][3])};
        for (int j = 0; j < 4; ++j)
          _mm512_store_ps(v + ((size_t)(4 * i + j) * s->c + c) * s->cells + 16 * k, r[j]);
      }
    }
}

/* The products M[xi] = U[xi] V[xi] for output channels [o0, o0 + rows) and
 * grid cells [t0, t0 + 16 * nv), rows x nv register tiles, into m: element
 * (xi, r, cell) at m[xi * xiStride + r * rowStride + cell]. */
static inline __attribute__((always_inline)) void products(const Shape *s, const float *u,
                                                           const float *v, int o0, int t0, int nv,
                                                           int rows, float *m, size_t xiStride,
                                                           size_t rowStride) {
  for (int xi = 0; xi < 16; ++xi) {
    __m512 acc[8][3];
    for (int r = 0; r < rows; ++r)
      for (int q = 0; q < 3; ++q)
        acc[r][q] = _mm512_setzero_ps();
    const float *vx = v + (size_t)xi * s->c * s->cells + t0;
    const float *ux = u + ((size_t)xi * s->o + o0) * s->c;
    for (int c = 0; c < s->c; ++c) {
      __m512 b[3];
      for (int q = 0; q < nv; ++q)
        b[q] = _mm512_load_ps(vx + (size_t)c * s->cells + 16 * q);
      for (int r = 0; r < rows; ++r) {
        __m512 a = _mm512_set1_ps(ux[r * s->c + c]);
        for (int q = 0; q < nv; ++q)
          acc[r][q] = _mm512_fmadd_ps(a, b[q], acc[r][q]);
      }
    }
    for (int r = 0; r < rows; ++r)
      for (int q = 0; q < nv; ++q)
        _mm512_store_ps(m + xi * xiStride + r * rowStride + 16 * q, acc[r][q]);
  }
}

/* Y = A^T M A for output channel o and grid cells [t, t + 16) (M laid out
 * as for products), + bias, relu, the window's first maximum and its
 * offset, stored pooled. */
static void finish(const Shape *s, const float *m, size_t xiStride, const float *bias, int o, int t,
                   float *pooled, int32_t *offsets) {
  __m512 b = _mm512_set1_ps(bias[o]);
  __m512 x[16], row[2][4];
  for (int xi = 0; xi < 16; ++xi)
    x[xi] = _mm512_load_ps(m + xi * xiStride);
  for (int j = 0; j < 4; ++j) {
    row[0][j] = _mm512_add_ps(_mm512_add_ps(x[j], x[4 + j]), x[8 + j]);
    row[1][j] = _mm512_sub_ps(_mm512_sub_ps(x[4 + j], x[8 + j]), x[12 + j]);
  }
  __m512 y[4];
  for (int i = 0; i < 2; ++i) {
    y[2 * i] = _mm512_add_ps(_mm512_add_ps(row[i][0], row[i][1]), row[i][2]);
    y[2 * i + 1] = _mm512_sub_ps(_mm512_sub_ps(row[i][1], row[i][2]), row[i][3]);
  }
  /* relu(y + bias), then the window's first maximum, in PyTorch's order */
  __m512 best = _mm512_max_ps(_mm512_add_ps(y[0], b), _mm512_setzero_ps());
  __m512i at = _mm512_setzero_si512();
  for (int e = 1; e < 4; ++e) {
    __m512 z = _mm512_max_ps(_mm512_add_ps(y[e], b), _mm512_setzero_ps());
    __mmask16 more = _mm512_cmp_ps_mask(z, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, more, z);
    at = _mm512_mask_mov_epi32(at, more, _mm512_set1_epi32(e));
  }
  /* grid cells t -> pooled (t / G, t % G), the last column dropped */
  for (int line = t / s->g; line * s->g < t + 16 && line < s->ph; ++line) {
    int first = line * s->g;
    __mmask16 on = 0;
    for (int lane = 0; lane < 16; ++lane)
      if (t + lane >= first && t + lane < first + s->pw)
        on |= (__mmask16)(1u << lane);
    /* lane l -> pooled line * PW + (t + l - first) */
    size_t at0 = (size_t)o * s->ph * s->pw + (size_t)line * s->pw;
    _mm512_mask_storeu_ps(pooled + at0 + (t - first), on, best);
    _mm512_mask_storeu_epi32(offsets + at0 + (t - first), on, at);
  }
}

/* Blocks of 8 output channels x 48 grid cells: the products into an L1
 * buffer m (16 x 8 x 48), then their outputs. */
static inline __attribute__((always_inline)) void block(const Shape *s, const float *u,
                                                        const float *v, const float *bias, int o0,
                                                        int t0, int nv, float *pooled,
                                                        int32_t *offsets, float *m) {
  products(s, u, v, o0, t0, nv, 8, m, 8 * 48, 48);
  for (int r = 0; r < 8; ++r)
    for (int q = 0; q < nv; ++q)
      finish(s, m + r * 48 + 16 * q, 8 * 48, bias, o0 + r, t0 + 16 * q, pooled, offsets);
}

/* How the products and outputs are ordered: blocks through an L1 buffer,
 * or split: the 16 whole products first (M, 16 x O x cells, in L2), then
 * every output (as netc would do with its GEMM calls). */
static int split;
static double phase[3];
static void winograd_image(const Shape *s, const float *img, const float *u, const float *bias,
                           float *planes, float *v, float *m, float *pooled, int32_t *offsets) {
  double t0 = now();
  parity_planes(s, img, planes);
  double t1 = now();
  transform_input(s, planes, v);
  double t2 = now();
  phase[0] += t1 - t0, phase[1] += t2 - t1;
  if (split) {
    size_t xiStride = (size_t)s->o * s->cells;
    for (int o0 = 0; o0 < s->o; o0 += 8)
      for (int t = 0; t < s->cells; t += 48) {
        int nv = (s->cells - t) / 16 < 3 ? (s->cells - t) / 16 : 3;
        float *at = m + (size_t)o0 * s->cells + t;
        if (nv == 3) /* constant vector counts: the tile's accumulators in registers */
          products(s, u, v, o0, t, 3, 8, at, xiStride, s->cells);
        else if (nv == 2)
          products(s, u, v, o0, t, 2, 8, at, xiStride, s->cells);
        else
          products(s, u, v, o0, t, 1, 8, at, xiStride, s->cells);
      }
    for (int o = 0; o < s->o; ++o)
      for (int t = 0; t < s->cells; t += 16)
        finish(s, m + (size_t)o * s->cells + t, xiStride, bias, o, t, pooled, offsets);
  } else {
    for (int o0 = 0; o0 < s->o; o0 += 8)
      for (int t = 0; t < s->cells; t += 48) {
        int nv = (s->cells - t) / 16 < 3 ? (s->cells - t) / 16 : 3;
        if (nv == 3)
          block(s, u, v, bias, o0, t, 3, pooled, offsets, m);
        else if (nv == 2)
          block(s, u, v, bias, o0, t, 2, pooled, offsets, m);
        else
          block(s, u, v, bias, o0, t, 1, pooled, offsets, m);
      }
  }
  phase[2] += now() - t2;
}

/* The reference: direct convolution in double, + bias, relu, max pooling. */
static void direct_image(const Shape *s, const float *img, const float *wt, const float *bias,
                         float *pooled) {
  for (int o = 0; o < s->o; ++o)
    for (int py = 0; py < s->ph; ++py)
      for (int px = 0; px < s->pw; ++px) {
        double best = -1e300;
        for (int e = 0; e < 4; ++e) {
          int oy = 2 * py + e / 2, ox = 2 * px + e % 2;
          double sum = bias[o];
          for (int c = 0; c < s->c; ++c)
            for (int kh = 0; kh < 3; ++kh)
              for (int kw = 0; kw < 3; ++kw) {
                int y = oy + kh - 2, x = ox + kw - 2;
                if (y >= 0 && y < s->h && x >= 0 && x < s->w)
                  sum += (double)wt[((o * s->c + c) * 3 + kh) * 3 + kw] *
                         img[(c * s->h + y) * s->w + x];
              }
          double r = sum > 0 ? sum : 0;
          if (r > best)
            best = r;
        }
        pooled[(o * s->ph + py) * s->pw + px] = (float)best;
      }
}

int main(int argc, char **argv) {
  int images = argc > 1 ? atoi(argv[1]) : 128, rounds = argc > 2 ? atoi(argv[2]) : 20;
  /* the course CNN's blocks 2-4 (inputs of 33 x 32, 17 x 17, 9 x 9) */
  int blocks[][4] = {{16, 32, 33, 32}, {32, 64, 17, 17}, {64, 128, 9, 9}};
  srand(1);
  for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; ++bi) {
    Shape s = shape(blocks[bi][0], blocks[bi][1], blocks[bi][2], blocks[bi][3]);
    size_t imgSize = (size_t)s.c * s.h * s.w, poolSize = (size_t)s.o * s.ph * s.pw;
    float *x = alloc(imgSize * images), *wt = alloc((size_t)s.o * s.c * 9), *bias = alloc(s.o);
    float *u = alloc((size_t)16 * s.o * s.c), *planes = alloc((size_t)4 * s.c * s.rows * s.g + 64);
    float *v = alloc((size_t)16 * s.c * s.cells),
          *m = alloc((size_t)16 * s.o * s.cells); /* split's M; blocks use 16 x 8 x 48 */
    float *pooled = alloc(poolSize * images), *want = alloc(poolSize);
    int32_t *offsets = (int32_t *)alloc(poolSize * images);
    for (size_t i = 0; i < imgSize * images; ++i)
      x[i] = (float)rand() / (float)RAND_MAX;
    float bound = 1.0f / sqrtf(9.0f * s.c);
    for (int i = 0; i < s.o * s.c * 9; ++i)
      wt[i] = bound * (2.0f * (float)rand() / (float)RAND_MAX - 1.0f);
    for (int i = 0; i < s.o; ++i)
      bias[i] = bound * (2.0f * (float)rand() / (float)RAND_MAX - 1.0f);
    transform_weights(&s, wt, u);
    for (split = 0; split < 2; ++split) {
      double best = 1e30;
      phase[0] = phase[1] = phase[2] = 0;
      memset(pooled, 0, poolSize * images * sizeof(float));
      for (int r = 0; r < rounds; ++r) {
        double start = now();
        for (int n = 0; n < images; ++n)
          winograd_image(&s, x + n * imgSize, u, bias, planes, v, m, pooled + n * poolSize,
                         offsets + n * poolSize);
        double t = now() - start;
        best = t < best ? t : best;
      }
      double err = 0, scale = 0;
      for (int n = 0; n < 3; ++n) {
        direct_image(&s, x + n * imgSize, wt, bias, want);
        for (size_t i = 0; i < poolSize; ++i) {
          err = fmax(err, fabs(pooled[n * poolSize + i] - want[i]));
          scale = fmax(scale, fabs(want[i]));
        }
      }
      double flop = 2.0 * s.o * s.c * 9 * s.oh * s.ow, all = phase[0] + phase[1] + phase[2];
      printf("conv %3d -> %3d over %2d x %2d, %-9s %6.1f us per image, %6.1f nominal GFLOP/s "
             "(planes %2.0f%%, input transform %2.0f%%, products and output %2.0f%%), max error "
             "%.2g of %.2g\n",
             s.c, s.o, s.h, s.w, split ? "split:" : "blocks:", 1e6 * best / images,
             flop * images / best / 1e9, 100 * phase[0] / all, 100 * phase[1] / all,
             100 * phase[2] / all, err, scale);
    }
    free(x), free(wt), free(bias), free(u), free(planes), free(v), free(m), free(pooled),
        free(want), free(offsets);
  }
  return 0;
}
