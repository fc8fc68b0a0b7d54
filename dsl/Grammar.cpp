// Grammar.cpp - the one translation unit that instantiates the X3 grammar.
#include "dsl/GrammarDef.hpp"

#include <fmt/format.h>

#include <cctype>

namespace netc::grammar {

uint32_t skipBlank(const std::string &source, uint32_t offset, uint32_t end) {
  Iterator it = source.begin() + offset;
  x3::parse(it, source.begin() + end, *skipper);
  return static_cast<uint32_t>(it - source.begin());
}

namespace {

// X3 names a failed literal by its quoted character ("')'") and a rule by
// its name ("an expression"); both read well after "expected".
std::string describe(const std::string &which) {
  if (which == kTooDeep)
    return fmt::format("expression nested too deeply (the limit is {} levels)", kMaxNesting);
  if (which.size() == 1)
    return "expected '" + which + "'";
  return "expected " + which;
}

} // namespace

/// A note for PyTorch habits the grammar stumbles on.
std::string syntaxHint(const std::string &source, uint32_t offset) {
  if (offset == 0 || offset >= source.size())
    return {};
  if (source[offset] == '*' && source[offset - 1] == '*')
    return "powers are written with ^ in netc: x^3 (Python's x**3)";
  if (source[offset] == '.') {
    uint32_t start = offset;
    while (start > 0 && std::isalnum(static_cast<unsigned char>(source[start - 1])))
      --start;
    std::string module = source.substr(start, offset - start);
    if (module == "nn" || module == "torch" || module == "F" || module == "optim")
      return "netc's layers, losses and optimizers have no module prefix: write relu, "
             "linear(3, 1), cross_entropy(scores, labels), adam(lr = 1e-3), not " +
             module + ".ReLU and the like";
  }
  return {};
}

namespace {

/// An expectation failure as a syntax error. The failure points before
/// skipped whitespace; the error points where the offending token starts.
bool expectationError(const std::string &source, const x3::expectation_failure<Iterator> &failure,
                      uint32_t end, SyntaxError &error) {
  error.offset = skipBlank(source, static_cast<uint32_t>(failure.where() - source.begin()), end);
  error.message = describe(failure.which());
  error.hint = syntaxHint(source, error.offset);
  return false;
}

} // namespace

bool parseExpression(const std::string &source, uint32_t offset, uint32_t end, ast::Expr &out,
                     SyntaxError &error) {
  ParseState state{source.begin(), 0};
  Iterator first = source.begin() + offset;
  Iterator const last = source.begin() + end;
  auto const parser = x3::with<state_tag>(std::ref(state))[expr];
  try {
    if (x3::phrase_parse(first, last, parser, skipper, out) && first == last)
      return true;
    error.offset = skipBlank(source, static_cast<uint32_t>(first - source.begin()), end);
    error.message =
        first == last ? "expected an expression" : "unexpected text after the expression";
    return false;
  } catch (const x3::expectation_failure<Iterator> &failure) {
    return expectationError(source, failure, end, error);
  }
}

bool parseStatement(const std::string &source, uint32_t &offset, uint32_t end, ast::Statement &out,
                    SyntaxError &error) {
  ParseState state{source.begin(), 0};
  Iterator first = source.begin() + offset;
  Iterator const last = source.begin() + end;
  auto const parser = x3::with<state_tag>(std::ref(state))[statement];
  try {
    if (x3::phrase_parse(first, last, parser, skipper, out)) {
      offset = static_cast<uint32_t>(first - source.begin());
      return true;
    }
    error.offset = skipBlank(source, offset, end);
    error.message = "expected a statement (data, input, target, param, sequence, "
                    "loss, optimizer, train, report, print or `name = ...`)";
    return false;
  } catch (const x3::expectation_failure<Iterator> &failure) {
    return expectationError(source, failure, end, error);
  }
}

} // namespace netc::grammar
