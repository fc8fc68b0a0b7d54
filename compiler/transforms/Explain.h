// Explain.h - a parameter's gradient as a formula in the .nn file's names
// (`netc --explain-grad NAME`).
#pragma once

#include "compiler/sema/Model.h"

#include <iosfwd>
#include <string>

namespace netc {

/// Prints dC/dNAME, derived and simplified as for the training step, as a
/// formula over the names of the .nn file: products are flattened into
/// their factors, in chain-rule order from the parameter outwards, and
/// known derivatives are named (sigma'(z) for sigmoid(z)(1 - sigmoid(z)),
/// relu'(z) for relu's step). Matrix products print as `A @ B`, transposes
/// as `A^T`. Returns false, with `error` set, if NAME is not a parameter.
bool explainGradient(const Model &model, const std::string &name, std::ostream &out,
                     std::string &error);

} // namespace netc
