/* classify_digits.c - the trained MNIST classifier (examples/mnist.nn) inside
 * a C program: loads the weights the trainer saved, reads handwritten digits
 * from an IDX file and prints each one's digit and the model's confidence,
 * as `./mnist --predict-file IMAGES` does (the same lines, bit for bit).
 *
 *   netc examples/mnist.nn --emit=lib -o mnist
 *   cc -I runtime/include classify_digits.c mnist.o libnetc_core.a -lm -o classify_digits
 *   ./classify_digits mnist.safetensors data/mnist/t10k-images-idx3-ubyte 20 */
#include "mnist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define BATCH 128

/* A big-endian 32-bit number of the IDX header. */
static int read_u32(FILE *f, uint32_t *v) {
  unsigned char b[4];
  if (fread(b, 1, 4, f) != 4)
    return 0;
  *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
  return 1;
}

/* The softmax probability of class k, in double as the trainer computes it. */
static double confidence(const float *logits, int k) {
  double max = logits[0], sum = 0;
  for (int j = 1; j < mnist_output_floats; ++j)
    max = logits[j] > max ? logits[j] : max;
  for (int j = 0; j < mnist_output_floats; ++j)
    sum += exp((double)logits[j] - max);
  return exp((double)logits[k] - max) / sum;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s WEIGHTS IMAGES [COUNT]\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[2], "rb");
  uint32_t magic, count, rows, cols;
  if (!f || !read_u32(f, &magic) || magic != 0x803 || !read_u32(f, &count) ||
      !read_u32(f, &rows) || !read_u32(f, &cols) || rows * cols != mnist_image_floats) {
    fprintf(stderr, "error: '%s' is not an IDX file of 28x28 images\n", argv[2]);
    return 1;
  }
  if (argc > 3 && strtoul(argv[3], NULL, 10) < count)
    count = (uint32_t)strtoul(argv[3], NULL, 10);

  mnist_state *model = mnist_create(BATCH);
  if (!model || mnist_load(model, argv[1]) != 0) {
    fprintf(stderr, "error: %s\n", model ? mnist_error(model) : "out of memory");
    return 1;
  }
  static float images[BATCH * mnist_image_floats], logits[BATCH * mnist_output_floats];
  unsigned char pixels[mnist_image_floats];
  printf("row,predicted,confidence\n");
  for (uint32_t begin = 0; begin < count; begin += BATCH) {
    int n = count - begin < BATCH ? (int)(count - begin) : BATCH;
    for (int i = 0; i < n; ++i) {
      if (fread(pixels, 1, sizeof pixels, f) != sizeof pixels) {
        fprintf(stderr, "error: '%s' ends early\n", argv[2]);
        return 1;
      }
      for (int p = 0; p < mnist_image_floats; ++p)
        images[i * mnist_image_floats + p] = (float)pixels[p] / 255.0f; /* as ToTensor */
    }
    mnist_predict(model, images, n, logits);
    for (int i = 0; i < n; ++i) {
      const float *row = logits + i * mnist_output_floats;
      int best = 0;
      for (int k = 1; k < mnist_output_floats; ++k)
        best = row[k] > row[best] ? k : best;
      printf("%u,%d,%.6f\n", begin + i, best, confidence(row, best));
    }
  }
  mnist_destroy(model);
  fclose(f);
  return 0;
}
