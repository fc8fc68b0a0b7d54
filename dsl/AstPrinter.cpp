// AstPrinter.cpp - `netc --emit=ast`: one node per line, indented, with the
// line:column where the node starts.
#include "dsl/Parser.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <ostream>

namespace netc {

namespace {

class AstPrinter {
public:
  AstPrinter(const SourceFile &file, std::ostream &out)
      : file_(file), out_(out) {}

  void print(const ast::Program &program) {
    line(0, "program", {0, 0}, false);
    for (const auto &s : program.statements)
      boost::apply_visitor([&](const auto &node) { statement(1, node); }, s);
  }

private:
  void line(int depth, std::string_view text, ast::Loc loc, bool withLoc = true) {
    out_ << std::string(2 * depth, ' ') << text;
    if (withLoc) {
      auto pos = file_.position(loc.begin);
      out_ << fmt::format(" @{}:{}", pos.line, pos.column);
    }
    out_ << '\n';
  }

  void expr(int d, const ast::Expr &e) {
    boost::apply_visitor([&](const auto &n) { node(d, n); }, e);
  }
  template <typename T> void node(int d, const boost::spirit::x3::forward_ast<T> &n) {
    node(d, n.get());
  }
  void node(int d, const ast::Number &n) {
    line(d, fmt::format("number {}", n.value), n.loc);
  }
  void node(int d, const ast::StringLit &n) {
    line(d, fmt::format("string \"{}\"", n.text), n.loc);
  }
  void node(int d, const ast::Ident &n) {
    line(d, fmt::format("ident {}", n.name), n.loc);
  }
  void node(int d, const ast::Call &n) {
    line(d, fmt::format("call {}", n.callee), n.loc);
    args(d + 1, n.args);
  }
  void node(int d, const ast::Unary &n) {
    line(d, fmt::format("unary {}", n.op), n.loc);
    expr(d + 1, n.operand);
  }
  void node(int d, const ast::Power &n) {
    line(d, "power", n.loc);
    expr(d + 1, n.base);
    expr(d + 1, n.exponent);
  }
  void node(int d, const ast::Chain &n) {
    line(d, "chain", n.loc);
    expr(d + 1, n.first);
    for (const auto &link : n.rest) {
      line(d + 1, fmt::format("{}", link.op), link.loc);
      expr(d + 2, link.operand);
    }
  }
  void node(int d, const ast::List &n) {
    line(d, "list", n.loc);
    for (const auto &item : n.items)
      expr(d + 1, item);
  }
  void node(int d, const ast::Paren &n) {
    line(d, "paren", n.loc);
    expr(d + 1, n.inner);
  }
  void node(int d, const ast::Pipe &n) {
    line(d, "pipe", n.loc);
    expr(d + 1, n.input);
    for (const auto &l : n.layers)
      layer(d + 1, l);
  }
  void layer(int d, const ast::LayerRef &l) {
    line(d, fmt::format("layer {}", l.name), l.loc);
    args(d + 1, l.args);
  }
  void args(int d, const std::vector<ast::Arg> &args) {
    for (const auto &a : args) {
      line(d, a.key.empty() ? std::string("arg") : fmt::format("arg {} =", a.key),
           a.loc);
      expr(d + 1, a.value);
    }
  }
  void type(int d, const ast::TensorType &t) {
    std::string dims;
    for (const auto &dim : t.dims) {
      if (!dims.empty())
        dims += ", ";
      dims += dim.symbol.empty() ? std::to_string(dim.size) : dim.symbol;
    }
    line(d, fmt::format("type {}[{}]", t.dtype, dims), t.loc);
  }

  void statement(int d, const ast::DataDecl &s) {
    line(d, "data", s.loc);
    node(d + 1, s.source);
  }
  void statement(int d, const ast::FieldDecl &s) {
    line(d, fmt::format("{} {}", s.role, s.name.name), s.loc);
    type(d + 1, s.type);
  }
  void statement(int d, const ast::ParamDecl &s) {
    line(d, fmt::format("param {}", s.name.name), s.loc);
    if (s.shape)
      type(d + 1, *s.shape);
    expr(d + 1, s.init);
  }
  void statement(int d, const ast::SequenceDecl &s) {
    line(d, fmt::format("sequence {}", s.name.name), s.loc);
    for (const auto &l : s.layers)
      layer(d + 1, l);
  }
  void statement(int d, const ast::LetDecl &s) {
    line(d, fmt::format("let {}", s.name.name), s.loc);
    expr(d + 1, s.value);
  }
  void statement(int d, const ast::LossDecl &s) {
    line(d, "loss", s.loc);
    expr(d + 1, s.value);
  }
  void statement(int d, const ast::OptimizerDecl &s) {
    line(d, "optimizer", s.loc);
    node(d + 1, s.config);
  }
  void statement(int d, const ast::TrainDecl &s) {
    line(d, "train", s.loc);
    args(d + 1, s.settings);
  }
  void statement(int d, const ast::ReportDecl &s) {
    line(d, fmt::format("report \"{}\"", s.text.text), s.loc);
  }
  void statement(int d, const ast::PrintDecl &s) {
    line(d, "print", s.loc);
    expr(d + 1, s.value);
  }

  const SourceFile &file_;
  std::ostream &out_;
};

} // namespace

void printAst(const ast::Program &program, const SourceFile &file,
              std::ostream &out) {
  AstPrinter(file, out).print(program);
}

} // namespace netc
