// GradCheck.h - --gradcheck: the compiled gradients against finite
// differences and against their double-precision twin.
#pragma once

#include "ModelInfo.h"

namespace netc::rt {

struct GradCheckOptions {
  int64_t entries = 20; ///< random entries checked per parameter tensor
  uint64_t seed = 0;
  double tolFiniteDifferences = 1e-6; ///< f64 gradient vs central differences
  double tolSinglePrecision = 1e-3;   ///< f32 gradient vs f64 gradient
};

/// Checks one batch at the current parameters. Prints the worst error per
/// tensor; returns true if every error is within tolerance.
///   1. The gradients entry point gives the f32 gradient, and leaves in
///      `scratch` the branch it took at each ReLU, max and max pooling
///      element; the gradients_f64 entry point takes the same branches and
///      gives the loss and the gradient in double (a piecewise-linear net's
///      loss is then smooth in the parameters, and the f32 and f64
///      gradients differentiate the same function).
///   2. For `entries` random entries per tensor, and along one random
///      direction over all parameters, fourth-order central differences of
///      the double loss at steps 1e-3..1e-6 (times max(1, |p|)) against it;
///      the first step that agrees within the tolerance counts, else the
///      best-agreeing one (a step across the kink of an op whose branch is
///      not shared, an overlapping max pooling's, says nothing about the
///      rule). The differences take the loss alone (gradients_f64 with
///      null grads: no backward pass). The error of an entry is the part of
///      |fd - g| that the loss's rounding (4 ulps) cannot explain, over
///      max(|fd|, |g|, 1e-6 * max|g of the tensor|): entries far below the
///      tensor's scale are judged on that scale.
///   3. The f32 gradient (the gradients entry point) against the double one:
///      |g32 - g64| / |g64| per tensor (Euclidean norms).
bool checkGradients(const ModelInfo &m, const float *persist, const float *const *inputs, int64_t n,
                    char *scratch, const float *hparams, const GradCheckOptions &options);

} // namespace netc::rt
