// Sema.h - semantic analysis: checks a parsed program and builds its forward
// graph.
//
// Resolves names, checks layer and function arity and arguments, infers every
// shape (with the op shape rules of the graph IR, so shapes are checked
// exactly once) and reports each user error at its location. It goes on
// after an error, so one run reports all of them. Checking and graph building
// are one walk: an expression that type-checks has just been added to the
// graph.
#pragma once

#include "compiler/sema/Model.h"
#include "dsl/Ast.h"
#include "dsl/Diagnostics.h"

#include <optional>

namespace netc {

/// The checked model, or nullopt if any error was reported. Relative data
/// paths in the program are taken relative to `sourceDir` (the .nn file's
/// folder; "" keeps them as written).
std::optional<Model> checkProgram(const ast::Program &program, std::string modelName,
                                  DiagnosticEngine &diags, std::string sourceDir = "");

} // namespace netc
