// Diagnostics.h - the one diagnostics engine of netc.
//
// Parse errors, semantic errors and warnings all go through DiagnosticEngine,
// which prints them the way compilers do:
//
//   sine.nn:7:12: error: unknown function 'sinn'
//     y = sinn(x)
//         ^~~~
//   note: did you mean 'sin'?
//
// It does not decide what is an error; callers do. It counts errors so a stage
// can report all of them and stop afterwards.
#pragma once

#include "dsl/Ast.h"

#include <cstddef>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace netc {

/// A source buffer with its display name and a line index.
class SourceFile {
public:
  SourceFile(std::string name, std::string text);

  const std::string &name() const { return name_; }
  const std::string &text() const { return text_; }

  struct Position {
    size_t line = 1;   ///< 1-based
    size_t column = 1; ///< 1-based, in bytes
  };
  Position position(uint32_t offset) const;
  /// The text of the (1-based) line, without its newline.
  std::string_view lineText(size_t line) const;

private:
  std::string name_;
  std::string text_;
  std::vector<size_t> lineStarts_;
};

enum class Severity { Error, Warning, Note };

class DiagnosticEngine {
public:
  DiagnosticEngine(const SourceFile &file, std::ostream &out);

  void error(ast::Loc loc, std::string_view message);
  void warning(ast::Loc loc, std::string_view message);
  /// A note attached to the previous diagnostic; printed without location.
  void note(std::string_view message);
  /// A note that points into the source.
  void note(ast::Loc loc, std::string_view message);

  unsigned errorCount() const { return errors_; }
  unsigned warningCount() const { return warnings_; }
  bool hasErrors() const { return errors_ != 0; }
  /// True once so many errors were reported that more would only be noise.
  bool tooManyErrors() const { return errors_ >= kMaxErrors; }

  const SourceFile &file() const { return file_; }

  static constexpr unsigned kMaxErrors = 20;

private:
  void report(Severity severity, ast::Loc loc, std::string_view message);

  const SourceFile &file_;
  std::ostream &out_;
  unsigned errors_ = 0;
  unsigned warnings_ = 0;
  bool suppressed_ = false; ///< past kMaxErrors: notes of dropped errors too
};

/// The closest of `candidates` to `word` by edit distance, or "" if none is
/// close enough to be a plausible typo.
std::string closestMatch(std::string_view word,
                         const std::vector<std::string> &candidates);

} // namespace netc
