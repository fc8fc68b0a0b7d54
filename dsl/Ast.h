// Ast.h - the syntax tree of a .nn file.
//
// Plain, position-tagged data: every node records the byte range of the source
// it was parsed from, so later stages can point at it. No logic lives here;
// names are not resolved and shapes are not checked (that is sema's job).
#pragma once

#include "dsl/Loc.h"

#include <boost/optional.hpp>
#include <boost/spirit/home/x3/support/ast/variant.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace netc::ast {

namespace x3 = boost::spirit::x3;

/// Base of every node that the parser tags with its source range.
struct Located {
  Loc loc;
};

struct Number : Located {
  double value = 0;
};

struct Ident : Located {
  std::string name;
};

/// A double-quoted string; `text` holds it without the quotes.
struct StringLit : Located {
  std::string text;
};

struct Call;
struct Unary;
struct Power;
struct Chain;
struct Pipe;
struct Paren;
struct List;

/// An expression. Binary operators of one precedence level are kept as a flat
/// chain (`a + b - c`); sema folds them left to right.
struct Expr : x3::variant<Number, Ident, StringLit, x3::forward_ast<Call>,
                          x3::forward_ast<Unary>, x3::forward_ast<Power>,
                          x3::forward_ast<Chain>, x3::forward_ast<Pipe>,
                          x3::forward_ast<Paren>, x3::forward_ast<List>> {
  using base_type::base_type;
  using base_type::operator=;
};

/// `name = value` or a positional `value` (key empty) inside a call.
struct Arg : Located {
  std::string key;
  Expr value;
};

/// `name(args...)`: a function, a layer or an initializer, depending on where
/// it appears.
struct Call : Located {
  std::string callee;
  std::vector<Arg> args;
};

/// `-operand`.
struct Unary : Located {
  char op = '-';
  Expr operand;
};

/// `base ^ exponent` (right associative).
struct Power : Located {
  Expr base;
  Expr exponent;
};

/// One `op operand` link of a chain.
struct Link : Located {
  char op = '+';
  Expr operand;
};

/// `first op1 e1 op2 e2 ...` for ops of one precedence level.
struct Chain : Located {
  Expr first;
  std::vector<Link> rest;
};

/// `[a, b, c]`: a constant tensor (lists of lists for more dimensions).
struct List : Located {
  std::vector<Expr> items;
};

/// `(expr)`; kept so locations of parenthesised expressions include the parens.
struct Paren : Located {
  Expr inner;
};

/// A layer reference inside a pipeline or sequence: `relu`, `linear(3, 1)`,
/// or the name of a declared sequence.
struct LayerRef : Located {
  std::string name;
  std::vector<Arg> args;
  bool hasParens = false;
};

/// `input -> layer -> layer ...`
struct Pipe : Located {
  Expr input;
  std::vector<LayerRef> layers;
};

/// One dimension of a declared shape: a number, or a symbolic name (the batch).
struct Dim : Located {
  std::string symbol; ///< empty for a numeric dimension
  int64_t size = 0;
};

/// `f32[N, 3]`; the dtype may be omitted in parameter shapes (`[1, 3]`).
struct TensorType : Located {
  std::string dtype;
  std::vector<Dim> dims;
};

// ---- statements -----------------------------------------------------------

/// `data sine(points = 2000, from = -pi, to = pi)`
struct DataDecl : Located {
  Call source;
};

/// `input x: f32[N]` / `target y: f32[N]`
struct FieldDecl : Located {
  std::string role; ///< "input" or "target"
  Ident name;
  TensorType type;
};

/// `param w: [1, 3] = uniform(-1, 1)`; no shape means a 0-d tensor.
struct ParamDecl : Located {
  Ident name;
  boost::optional<TensorType> shape;
  Expr init;
};

/// `sequence dense = linear(784, 256) -> relu -> linear(256, 10)`
struct SequenceDecl : Located {
  Ident name;
  std::vector<LayerRef> layers;
};

/// `y_pred = expr`
struct LetDecl : Located {
  Ident name;
  Expr value;
};

/// `loss expr`
struct LossDecl : Located {
  Expr value;
};

/// `optimizer sgd(lr = 1e-6)`
struct OptimizerDecl : Located {
  Call config;
};

/// `train steps = 2000, report_every = 100, seed = 1`
struct TrainDecl : Located {
  std::vector<Arg> settings;
};

/// `report "Result: y = {a} + {b} x"`
struct ReportDecl : Located {
  StringLit text;
};

/// `print mse(a, b)`: a value computed and printed by the program
struct PrintDecl : Located {
  Expr value;
};

using Statement =
    x3::variant<DataDecl, FieldDecl, ParamDecl, SequenceDecl, LetDecl,
                LossDecl, OptimizerDecl, TrainDecl, ReportDecl, PrintDecl>;

struct Program {
  std::vector<Statement> statements;
};

/// The source range of any expression.
inline Loc locOf(const Expr &e) {
  return boost::apply_visitor(
      [](const auto &node) -> Loc {
        if constexpr (std::is_base_of_v<Located, std::decay_t<decltype(node)>>)
          return node.loc;
        else
          return node.get().loc;
      },
      e);
}

} // namespace netc::ast
