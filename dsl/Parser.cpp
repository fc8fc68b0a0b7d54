// Parser.cpp - statement loop with error recovery around the X3 grammar.
#include "dsl/Parser.h"
#include "dsl/Grammar.hpp"

#include <fmt/format.h>

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

uint32_t nextLine(const std::string &text, uint32_t offset) {
  size_t nl = text.find('\n', offset);
  return nl == std::string::npos ? static_cast<uint32_t>(text.size())
                                 : static_cast<uint32_t>(nl + 1);
}

} // namespace

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
  uint32_t offset = grammar::skipBlank(text, 0);
  while (offset < text.size() && !diags.tooManyErrors()) {
    ast::Statement statement;
    grammar::SyntaxError error;
    if (grammar::parseStatement(text, offset, statement, error)) {
      program.statements.push_back(std::move(statement));
      offset = grammar::skipBlank(text, offset);
      continue;
    }
    uint32_t end = error.offset < text.size() ? error.offset + 1 : error.offset;
    diags.error({error.offset, end}, error.message);
    // Resynchronise: the next statement starts on a later line.
    offset = grammar::skipBlank(text, nextLine(text, std::max(offset, error.offset)));
  }
  return program;
}

} // namespace netc
