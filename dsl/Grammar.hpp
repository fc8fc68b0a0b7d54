// Grammar.hpp - the entry point into the Spirit X3 grammar of .nn files.
//
// The grammar itself lives in GrammarDef.hpp and is instantiated once, in
// Grammar.cpp, so the heavy X3 templates are compiled in one translation unit.
// This header exposes one statement-at-a-time entry point; Parser.cpp drives
// it and does error recovery.
#pragma once

#include "dsl/Ast.h"

#include <string>

namespace netc::grammar {

/// Why a statement failed to parse.
struct SyntaxError {
  uint32_t offset = 0;  ///< where the parser got stuck
  std::string message; ///< e.g. "expected ')'" or "expected an expression"
  std::string hint;    ///< a note, e.g. for a PyTorch spelling
};

/// Deepest nesting of parentheses, unary minus and powers one expression may
/// have. The grammar recurses on the C stack, so hostile input must be bounded.
constexpr int kMaxNesting = 200;

/// Parses one statement in [offset, end) (leading whitespace and comments are
/// skipped). On success fills `out`, advances `offset` past it and returns
/// true. On failure fills `error` and returns false.
bool parseStatement(const std::string &source, uint32_t &offset, uint32_t end,
                    ast::Statement &out, SyntaxError &error);

/// Parses one expression filling [offset, end) of `source` (blanks around it
/// allowed), e.g. a report placeholder; locations are offsets in `source`.
bool parseExpression(const std::string &source, uint32_t offset, uint32_t end, ast::Expr &out,
                     SyntaxError &error);

/// A note for a PyTorch habit at `offset` where parsing stopped (x**3,
/// nn.ReLU), or "".
std::string syntaxHint(const std::string &source, uint32_t offset);

/// Skips whitespace and `#` comments from `offset`, not past `end`.
uint32_t skipBlank(const std::string &source, uint32_t offset, uint32_t end);

} // namespace netc::grammar
