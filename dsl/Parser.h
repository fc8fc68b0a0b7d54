// Parser.h - turns the text of a .nn file into an ast::Program.
//
// Performs no semantic checks: names are not resolved and shapes are not
// looked at. Syntax errors are reported through the DiagnosticEngine; after
// one, the parser resynchronises at the next line and goes on, so one run
// reports every broken statement.
#pragma once

#include "dsl/Ast.h"
#include "dsl/Diagnostics.h"

#include <optional>

namespace netc {

/// Parses the whole file. Statements that failed to parse are left out of the
/// result; `diags.hasErrors()` tells whether any did.
ast::Program parseProgram(const SourceFile &file, DiagnosticEngine &diags);

/// Parses the expression at `range` of the file (a report placeholder);
/// a syntax error is reported and gives nullopt.
std::optional<ast::Expr> parseExpression(const SourceFile &file, ast::Loc range,
                                         DiagnosticEngine &diags);

/// Prints the AST as an indented tree with line:column of every node
/// (`netc --emit=ast`).
void printAst(const ast::Program &program, const SourceFile &file,
              std::ostream &out);

} // namespace netc
