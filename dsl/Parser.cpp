// Parser.cpp - splits the file into statements and parses each with the X3
// grammar, recovering from errors.
//
// Statements are line oriented: a statement ends where a later line starts,
// in its first column, with a statement keyword or `name =`. Lines that start
// with whitespace (or anything else) continue the statement. Parsing each
// statement within its own range keeps one error from swallowing the next
// statement, and lets the parser resume right after it.
#include "dsl/Parser.h"
#include "dsl/Grammar.hpp"

#include <fmt/format.h>

#include <cctype>
#include <string_view>

namespace netc {

namespace {

// Files that are not text at all get one clear error instead of one per line.
bool looksBinary(const std::string &text) {
  size_t probe = std::min<size_t>(text.size(), 4096);
  for (size_t i = 0; i < probe; ++i)
    if (text[i] == '\0')
      return true;
  return false;
}

bool isIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

/// Does the line starting at `pos` start a new statement?
bool startsStatement(std::string_view text, size_t pos) {
  size_t end = pos;
  while (end < text.size() && isIdentChar(text[end]))
    ++end;
  if (end == pos || std::isdigit(static_cast<unsigned char>(text[pos])))
    return false;
  std::string_view word = text.substr(pos, end - pos);
  for (std::string_view kw : {"data", "input", "target", "param", "sequence", "loss",
                              "optimizer", "train", "report", "print"})
    if (word == kw)
      return true;
  while (end < text.size() && (text[end] == ' ' || text[end] == '\t'))
    ++end;
  return end + 1 < text.size() ? text[end] == '=' && text[end + 1] != '='
                               : end < text.size() && text[end] == '=';
}

/// End of the statement that starts at `offset`: the start of the next line
/// that starts a statement, or the end of the file.
uint32_t statementEnd(const std::string &text, uint32_t offset) {
  size_t pos = text.find('\n', offset);
  while (pos != std::string::npos) {
    if (startsStatement(text, pos + 1))
      return static_cast<uint32_t>(pos + 1);
    pos = text.find('\n', pos + 1);
  }
  return static_cast<uint32_t>(text.size());
}

/// The offset just after the last non-blank character before `end`, so an
/// error "at the end of the statement" points at the statement, not at the
/// next line.
uint32_t lastNonBlank(const std::string &text, uint32_t begin, uint32_t end) {
  uint32_t last = begin;
  for (uint32_t i = begin; i < end;) {
    uint32_t next = grammar::skipBlank(text, i, end);
    if (next > i) {
      i = next;
      continue;
    }
    last = ++i;
  }
  return last;
}

} // namespace

std::optional<ast::Expr> parseExpression(const SourceFile &file, ast::Loc range,
                                         DiagnosticEngine &diags) {
  ast::Expr out;
  grammar::SyntaxError error;
  if (grammar::parseExpression(file.text(), range.begin, range.end, out, error))
    return out;
  diags.error({error.offset, error.offset + 1}, error.message);
  if (!error.hint.empty())
    diags.note(error.hint);
  return std::nullopt;
}

ast::Program parseProgram(const SourceFile &file, DiagnosticEngine &diags) {
  ast::Program program;
  const std::string &text = file.text();
  if (text.size() >= UINT32_MAX) {
    diags.error({0, 0}, "file is too large (4 GiB or more)");
    return program;
  }
  if (looksBinary(text)) {
    diags.error({0, 0}, "this is not a text file (it contains NUL bytes)");
    return program;
  }
  auto size = static_cast<uint32_t>(text.size());
  uint32_t offset = grammar::skipBlank(text, 0, size);
  while (offset < size && !diags.tooManyErrors()) {
    uint32_t end = statementEnd(text, offset);
    ast::Statement statement;
    grammar::SyntaxError error;
    uint32_t at = offset;
    if (grammar::parseStatement(text, at, end, statement, error)) {
      uint32_t rest = grammar::skipBlank(text, at, end);
      if (rest == end) {
        program.statements.push_back(std::move(statement));
        offset = grammar::skipBlank(text, end, size);
        continue;
      }
      error = {rest, "unexpected text after the statement", grammar::syntaxHint(text, rest)};
    }
    if (error.offset >= end)
      error.offset = lastNonBlank(text, offset, end);
    diags.error({error.offset, error.offset + 1}, error.message);
    if (!error.hint.empty())
      diags.note(error.hint);
    offset = grammar::skipBlank(text, end, size);
  }
  return program;
}

} // namespace netc
