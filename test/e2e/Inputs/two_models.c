/* two_models.c - one program, two models: each model's object defines only
 * its descriptor (netc_model_<name>), so both link side by side; the
 * program trains and evaluates each through the same runtime. */
#include "netc/runtime.h"

#include <stdio.h>

extern const netc_model netc_model_cubic, netc_model_digits;

int main(void) {
  char *cubic[] = {"cubic", "--save", "cubic.safetensors", NULL};
  char *digits[] = {"digits", "--data", "data", "--epochs", "2", "--save", "digits.safetensors",
                    "--checkpoint", "digits.ckpt.safetensors", NULL};
  char *eval[] = {"digits", "--data", "data", "--eval", "--init", "digits.safetensors", NULL};
  printf("models %s and %s\n", netc_model_cubic.name, netc_model_digits.name);
  int rc = netc_main(&netc_model_cubic, 3, cubic);
  rc = rc ? rc : netc_main(&netc_model_digits, 9, digits);
  rc = rc ? rc : netc_main(&netc_model_digits, 6, eval);
  return rc;
}
