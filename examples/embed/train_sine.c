/* train_sine.c - trains the course's cubic fit of sin(x) (examples/sine.nn)
 * from this program's own loop, through the model's C library: the data,
 * the steps and the progress line are ours; the gradients and the update
 * are netc's. It reaches the same weights, bit for bit, as `./sine`.
 *
 *   netc examples/sine.nn --emit=lib -o sine
 *   cc -I runtime/include train_sine.c sine.o libnetc_core.a -lm -o train_sine
 *   ./train_sine sine.safetensors */
#include "sine.h"

#include <math.h>
#include <stdio.h>

#define POINTS 2000
#define PI 3.14159265358979323846

int main(int argc, char **argv) {
  const char *out = argc > 1 ? argv[1] : "sine.safetensors";
  /* 2000 points over [-pi, pi], as torch.linspace computes them in float. */
  static float x[POINTS], y[POINTS];
  float from = (float)-PI, to = (float)PI, step = (to - from) / (float)(POINTS - 1);
  for (int i = 0; i < POINTS; ++i) {
    x[i] = i < POINTS / 2 ? from + step * (float)i : to - step * (float)(POINTS - i - 1);
    y[i] = sinf(x[i]);
  }

  sine_state *model = sine_create(POINTS); /* initialised with the .nn file's seed */
  if (!model) {
    perror("sine_create");
    return 1;
  }
  float loss = 0;
  for (int t = 1; t <= 2000; ++t) {
    if (sine_train_step(model, x, y, POINTS, &loss) != 0) {
      fprintf(stderr, "error: %s\n", sine_error(model));
      return 1;
    }
    if (t % 500 == 0)
      printf("step %d: loss %.6g\n", t, loss);
  }
  printf("Result: y = %.7g + %.7g x + %.7g x^2 + %.7g x^3\n", *sine_tensor(model, "a"),
         *sine_tensor(model, "b"), *sine_tensor(model, "c"), *sine_tensor(model, "d"));
  int rc = sine_save(model, out);
  if (rc != 0)
    fprintf(stderr, "error: %s\n", sine_error(model));
  sine_destroy(model);
  return rc != 0;
}
