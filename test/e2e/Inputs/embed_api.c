/* embed_api.c - the C library's promises beyond the happy path: refused
 * arguments and files come back as error codes with a message (never a
 * crash, never a changed state), the seed gives the trainer's initial
 * weights, and training is the same bits on one thread or two.
 * Links mnist.o and sine.o (netc --emit=lib) with libnetc_core.a. */
#include "mnist.h"
#include "sine.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void report(const char *what, int rc, const char *message) {
  printf("%s: %s (%s)\n", what, rc ? message : "ok", rc ? strerror(rc) : "0");
}

/* Trains 3 steps of 20 synthetic digits from seed 7. */
static void train3(mnist_state *m, float *image, int64_t *label) {
  mnist_init(m, 7);
  for (int t = 0; t < 3; ++t)
    mnist_train_step(m, image, label, 20, NULL);
}

int main(void) {
  errno = 0;
  mnist_state *none = mnist_create(0);
  printf("create(0): %s, errno %s\n", none ? "state" : "NULL", errno == EINVAL ? "EINVAL" : "other");

  mnist_state *m = mnist_create(32);
  sine_state *s = sine_create(8);
  float before = mnist_tensor(m, "dense_layers.0.weight")[5];
  report("load missing", mnist_load(m, "missing.safetensors"), mnist_error(m));
  report("load checkpoint", mnist_load(m, "digits.ckpt.safetensors"), mnist_error(m));
  report("load another model's", mnist_load(m, "cubic.safetensors"), mnist_error(m));
  report("load a folder", mnist_load(m, "."), mnist_error(m));
  report("load garbage", mnist_load(m, "garbage.safetensors"), mnist_error(m));
  printf("unchanged after failed loads: %s\n",
         mnist_tensor(m, "dense_layers.0.weight")[5] == before ? "yes" : "NO");
  report("save to a folder", mnist_save(m, "."), mnist_error(m));
  printf("no such tensor: %s\n", mnist_tensor(m, "fc9.weight") ? "found" : "NULL");

  static float image[64 * mnist_image_floats];
  static int64_t label[64];
  for (int i = 0; i < 64; ++i) {
    label[i] = i % 10;
    image[i * mnist_image_floats + 30 * (i % 10)] = 1;
  }
  report("batch of 33", mnist_train_step(m, image, label, 33, NULL), mnist_error(m));
  report("batch of 0", mnist_train_step(m, image, label, 0, NULL), mnist_error(m));
  label[3] = 10;
  report("label 10", mnist_train_step(m, image, label, 20, NULL), mnist_error(m));
  label[3] = 3;
  printf("steps after refused calls: %lld\n", (long long)mnist_steps(m));
  report("predict without inputs", mnist_predict(m, NULL, 4, NULL), mnist_error(m));

  /* Same bits on 1 and 2 threads. */
  static float one[256 * 784];
  train3(m, image, label);
  memcpy(one, mnist_tensor(m, "dense_layers.0.weight"), sizeof one);
  report("2 threads", mnist_set_threads(2), "cannot start threads");
  train3(m, image, label);
  printf("1 and 2 threads: %s\n",
         memcmp(one, mnist_tensor(m, "dense_layers.0.weight"), sizeof one) ? "DIFFER" : "same bits");
  mnist_set_threads(1);

  /* The trainer's --seed 5 initial weights. */
  sine_init(s, 5);
  report("save seed 5", sine_save(s, "seed5.safetensors"), sine_error(s));
  *sine_tensor(s, "c") = NAN;
  report("save a NaN", sine_save(s, "nan.safetensors"), sine_error(s));
  mnist_destroy(m);
  sine_destroy(s);
  return 0;
}
