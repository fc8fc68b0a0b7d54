// Builtins.h - the one registry of the language's built-in names.
//
// Every name the language gives a meaning to (functions, layers,
// initializers, optimizers, constants) has one row here: its kind, how sema
// lowers it, and the usage shown in messages. Sema dispatches calls and
// layers on a row's lowering; "did you mean" suggestions and the names a
// program may not redefine come from the same rows, so they cannot drift
// apart. Data sources have their own table (DataSources.h).
#pragma once

#include "compiler/graph/Graph.h"

#include <string>
#include <string_view>
#include <vector>

namespace netc {

enum class BuiltinKind { Function, Layer, Initializer, Optimizer, Constant };

/// How sema lowers a built-in function or layer.
enum class Lowering {
  Elementwise,   ///< f(x) -> op(x); as a layer: x -> f
  Sum,           ///< sum(x)
  Mean,          ///< mean(x)
  Row,           ///< softmax, log_softmax along the last axis
  Stack,         ///< stack(a, b, ...)
  PointwiseLoss, ///< mse, l1, bce, bce_with_logits
  ClassLoss,     ///< cross_entropy, nll
  Flatten,       ///< flatten(x, start, end); as a layer: flatten(start, end)
  Linear,        ///< the linear layer
  Conv,          ///< conv2d
  Pool,          ///< max_pool2d, avg_pool2d
  BatchNorm,     ///< batch_norm1d, batch_norm2d
  Dropout,       ///< dropout
  Spectrogram,   ///< spectrogram, mel_spectrogram, amplitude_to_db (torchaudio's)
  None,          ///< initializers, optimizers, constants
};

struct Builtin {
  std::string_view name;
  BuiltinKind kind;
  Lowering lowering = Lowering::None;
  Op op = Op::Abs; ///< Elementwise: the op
  std::string_view usage;
};

/// The row of `name` as a `kind`, or nullptr.
const Builtin *findBuiltin(std::string_view name, BuiltinKind kind);

/// Every name of that kind, for suggestions.
std::vector<std::string> builtinNames(BuiltinKind kind);

/// Names a program may not define (`sum = ...`): functions and constants.
bool isReservedName(std::string_view name);

} // namespace netc
