// Diagnostics.cpp - printing diagnostics with a source line and a caret.
#include "dsl/Diagnostics.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <ostream>

namespace netc {

SourceFile::SourceFile(std::string name, std::string text)
    : name_(std::move(name)), text_(std::move(text)) {
  lineStarts_.push_back(0);
  for (size_t i = 0; i < text_.size(); ++i)
    if (text_[i] == '\n')
      lineStarts_.push_back(i + 1);
}

SourceFile::Position SourceFile::position(uint32_t offset) const {
  size_t off = std::min<size_t>(offset, text_.size());
  auto it = std::upper_bound(lineStarts_.begin(), lineStarts_.end(), off);
  size_t line = static_cast<size_t>(it - lineStarts_.begin());
  return {line, off - lineStarts_[line - 1] + 1};
}

std::string_view SourceFile::lineText(size_t line) const {
  if (line == 0 || line > lineStarts_.size())
    return {};
  size_t begin = lineStarts_[line - 1];
  size_t end = line < lineStarts_.size() ? lineStarts_[line] - 1 : text_.size();
  std::string_view view(text_);
  view = view.substr(begin, end - begin);
  if (!view.empty() && view.back() == '\r')
    view.remove_suffix(1);
  return view;
}

DiagnosticEngine::DiagnosticEngine(const SourceFile &file, std::ostream &out)
    : file_(file), out_(out) {}

void DiagnosticEngine::error(ast::Loc loc, std::string_view message) {
  if (errors_ >= kMaxErrors) {
    suppressed_ = true;
    return;
  }
  suppressed_ = false;
  ++errors_;
  report(Severity::Error, loc, message);
  if (errors_ == kMaxErrors)
    out_ << fmt::format("{}: note: too many errors, stopping here\n",
                        file_.name());
}

void DiagnosticEngine::warning(ast::Loc loc, std::string_view message) {
  ++warnings_;
  suppressed_ = false;
  report(Severity::Warning, loc, message);
}

void DiagnosticEngine::note(std::string_view message) {
  if (suppressed_)
    return;
  out_ << "note: " << message << '\n';
}

void DiagnosticEngine::note(ast::Loc loc, std::string_view message) {
  if (suppressed_)
    return;
  report(Severity::Note, loc, message);
}

namespace {

// Long lines (a 10 MB line of garbage, say) are shown as a window around the
// caret so a diagnostic stays readable.
constexpr size_t kWindow = 100;

std::string_view severityName(Severity s) {
  switch (s) {
  case Severity::Error:
    return "error";
  case Severity::Warning:
    return "warning";
  case Severity::Note:
    return "note";
  }
  return "error";
}

// Replaces control characters and bytes outside ASCII so garbage input does
// not mess up the terminal and the caret stays aligned.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char &c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u == '\t')
      c = ' ';
    else if (u < 0x20 || u >= 0x7f)
      c = '?';
  }
  return out;
}

} // namespace

void DiagnosticEngine::report(Severity severity, ast::Loc loc,
                              std::string_view message) {
  auto pos = file_.position(loc.begin);
  out_ << fmt::format("{}:{}:{}: {}: {}\n", file_.name(), pos.line, pos.column,
                      severityName(severity), message);
  std::string_view line = file_.lineText(pos.line);
  size_t col = pos.column - 1;
  size_t width = 1;
  if (loc.end > loc.begin)
    width = std::min<size_t>(loc.end - loc.begin, line.size() - std::min(col, line.size()));
  width = std::max<size_t>(width, 1);

  size_t from = 0;
  std::string prefix, suffix;
  if (line.size() > 2 * kWindow) {
    from = col > kWindow / 2 ? col - kWindow / 2 : 0;
    if (from > 0)
      prefix = "...";
    if (from + kWindow < line.size())
      suffix = "...";
    line = line.substr(from, kWindow);
    width = std::min(width, kWindow);
  }
  size_t caretCol = col - from + prefix.size();
  out_ << "  " << prefix << printable(line) << suffix << '\n';
  out_ << "  " << std::string(caretCol, ' ') << '^'
       << std::string(width > 1 ? width - 1 : 0, '~') << '\n';
}

std::string closestMatch(std::string_view word,
                         const std::vector<std::string> &candidates) {
  // Optimal string alignment distance: edits plus swaps of neighbours, so
  // 'form' is one step from 'from'.
  auto distance = [](std::string_view a, std::string_view b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i)
      d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j)
      d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
      for (size_t j = 1; j <= b.size(); ++j) {
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                            d[i - 1][j - 1] + (a[i - 1] != b[j - 1] ? 1 : 0)});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    return d[a.size()][b.size()];
  };
  if (word.size() > 64)
    return {};
  std::string best;
  // A plausible typo changes at most a third of the word, and never all of
  // it ('x' is not a typo of 'a').
  size_t bestDistance = std::min(word.size(), word.size() / 3 + 2);
  for (const auto &c : candidates) {
    if (c.size() > 64)
      continue;
    size_t d = distance(word, c);
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  return best;
}

} // namespace netc
