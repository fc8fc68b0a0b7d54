// GrammarDef.hpp - the X3 grammar of .nn files. Included by Grammar.cpp only.
//
// Each rule carries its EBNF above it. Expressions are built by semantic
// actions so that a plain operand is not wrapped in empty chain nodes: a long
// `x + x + ...` line costs one node per operand, not four.
//
// Recursion (parentheses, unary minus, powers) goes through `factor`, which is
// wrapped in a depth guard: deeper input gets a diagnostic, not a stack
// overflow.
#pragma once

#include "dsl/Ast.h"
#include "dsl/Grammar.hpp"

#include <boost/fusion/include/adapt_struct.hpp>
#include <boost/spirit/home/x3.hpp>
#include <boost/spirit/home/x3/support/ast/position_tagged.hpp>

BOOST_FUSION_ADAPT_STRUCT(netc::ast::Number, value)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::Ident, name)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::StringLit, text)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::Arg, key, value)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::Call, callee, args)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::Unary, op, operand)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::Link, op, operand)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::Paren, inner)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::List, items)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::LayerRef, name, args)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::Dim, symbol, size)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::TensorType, dtype, dims)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::DataDecl, source)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::FieldDecl, role, name, type)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::ParamDecl, name, shape, init)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::SequenceDecl, name, layers)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::LetDecl, name, value)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::LossDecl, value)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::OptimizerDecl, config)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::TrainDecl, settings)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::ReportDecl, text)
BOOST_FUSION_ADAPT_STRUCT(netc::ast::PrintDecl, value)

namespace netc::grammar {

namespace x3 = boost::spirit::x3;
using Iterator = std::string::const_iterator;

/// Per-parse state reachable from every rule through the X3 context.
struct ParseState {
  Iterator begin;
  int depth = 0;
};
struct state_tag;

// ---- support: locations, depth guard, expression building -----------------

inline ParseState &stateOf(auto const &ctx) {
  return x3::get<state_tag>(ctx).get();
}

/// Tags every ast::Located node with the source range its rule matched.
struct annotate {
  template <typename It, typename Ctx, typename Node>
  void on_success(It const &first, It const &last, Node &node,
                  Ctx const &ctx) const {
    if constexpr (std::is_base_of_v<ast::Located, Node>) {
      auto &st = stateOf(ctx);
      node.loc = {static_cast<uint32_t>(first - st.begin),
                  static_cast<uint32_t>(last - st.begin)};
    }
  }
};

inline constexpr char kTooDeep[] = "<too deep>";

/// `guard[p]` parses p one nesting level deeper and fails with "nesting too
/// deep" past kMaxNesting.
template <typename Subject>
struct guard_parser : x3::unary_parser<Subject, guard_parser<Subject>> {
  using base_type = x3::unary_parser<Subject, guard_parser<Subject>>;
  static bool const handles_container = Subject::handles_container;
  constexpr guard_parser(Subject const &subject) : base_type(subject) {}

  template <typename It, typename Ctx, typename RCtx, typename Attr>
  bool parse(It &first, It const &last, Ctx const &ctx, RCtx &rctx,
             Attr &attr) const {
    auto &st = stateOf(ctx);
    if (st.depth >= kMaxNesting)
      boost::throw_exception(x3::expectation_failure<It>(
          first, kTooDeep));
    struct Level {
      int &depth;
      ~Level() { --depth; }
    } level{++st.depth};
    return this->subject.parse(first, last, ctx, rctx, attr);
  }
};

struct guard_gen {
  template <typename Subject>
  constexpr guard_parser<typename x3::extension::as_parser<Subject>::value_type>
  operator[](Subject const &subject) const {
    return {x3::as_parser(subject)};
  }
};
constexpr guard_gen guard{};

inline auto const setFirst = [](auto &ctx) {
  x3::_val(ctx) = std::move(x3::_attr(ctx));
};

inline bool isAdditive(char op) { return op == '+' || op == '-'; }

/// Appends `op operand` to the chain being built, or starts one. A chain
/// holds operators of one precedence level only, so `a*b + c` nests the
/// product chain inside the sum chain.
inline auto const appendLink = [](auto &ctx) {
  ast::Expr &val = x3::_val(ctx);
  ast::Link &link = x3::_attr(ctx);
  if (auto *fa = boost::get<x3::forward_ast<ast::Chain>>(&val)) {
    ast::Chain &chain = fa->get();
    if (isAdditive(chain.rest.front().op) == isAdditive(link.op)) {
      chain.loc.end = link.loc.end;
      chain.rest.push_back(std::move(link));
      return;
    }
  }
  ast::Chain chain;
  chain.loc = {ast::locOf(val).begin, link.loc.end};
  chain.first = std::move(val);
  chain.rest.push_back(std::move(link));
  val = std::move(chain);
};

inline auto const makePower = [](auto &ctx) {
  ast::Expr &val = x3::_val(ctx);
  ast::Power power;
  power.exponent = std::move(x3::_attr(ctx));
  power.loc = {ast::locOf(val).begin, ast::locOf(power.exponent).end};
  power.base = std::move(val);
  val = std::move(power);
};

inline auto const appendLayer = [](auto &ctx) {
  ast::Expr &val = x3::_val(ctx);
  ast::LayerRef &layer = x3::_attr(ctx);
  if (auto *fa = boost::get<x3::forward_ast<ast::Pipe>>(&val)) {
    fa->get().loc.end = layer.loc.end;
    fa->get().layers.push_back(std::move(layer));
    return;
  }
  ast::Pipe pipe;
  pipe.loc = {ast::locOf(val).begin, layer.loc.end};
  pipe.input = std::move(val);
  pipe.layers.push_back(std::move(layer));
  val = std::move(pipe);
};

// ---- rule ids --------------------------------------------------------------

struct number_class : annotate {};
struct ident_class : annotate {};
struct name_class : annotate {};
struct string_class : annotate {};
struct arg_class : annotate {};
struct call_class : annotate {};
struct layer_class : annotate {};
struct unary_class : annotate {};
struct add_link_class : annotate {};
struct mul_link_class : annotate {};
struct paren_class : annotate {};
struct list_class : annotate {};
struct dim_class : annotate {};
struct type_class : annotate {};
struct data_class : annotate {};
struct field_class : annotate {};
struct param_class : annotate {};
struct sequence_class : annotate {};
struct let_class : annotate {};
struct loss_class : annotate {};
struct optimizer_class : annotate {};
struct train_class : annotate {};
struct report_class : annotate {};
struct print_class : annotate {};
struct expr_class {};
struct pipe_class {};
struct sum_class {};
struct product_class {};
struct factor_class {};
struct power_class {};
struct primary_class {};
struct statement_class {};

x3::rule<number_class, ast::Number> const number = "a number";
x3::rule<ident_class, ast::Ident> const ident = "a name";
x3::rule<name_class, std::string> const name = "a name";
x3::rule<string_class, ast::StringLit> const string_lit = "a string";
x3::rule<arg_class, ast::Arg> const arg = "an argument";
x3::rule<call_class, ast::Call> const call = "a call";
x3::rule<layer_class, ast::LayerRef> const layer = "a layer";
x3::rule<unary_class, ast::Unary> const unary = "an operand";
x3::rule<add_link_class, ast::Link> const add_link = "an operand";
x3::rule<mul_link_class, ast::Link> const mul_link = "an operand";
x3::rule<paren_class, ast::Paren> const paren = "'('";
x3::rule<list_class, ast::List> const list = "'['";
x3::rule<expr_class, ast::Expr> const expr = "an expression";
x3::rule<pipe_class, ast::Expr> const pipe = "an expression";
x3::rule<sum_class, ast::Expr> const sum = "an expression";
x3::rule<product_class, ast::Expr> const product = "an operand";
x3::rule<factor_class, ast::Expr> const factor = "an operand";
x3::rule<power_class, ast::Expr> const power = "an operand";
x3::rule<primary_class, ast::Expr> const primary = "an operand";
x3::rule<dim_class, ast::Dim> const dim = "a dimension";
x3::rule<type_class, ast::TensorType> const tensor_type = "a shape like f32[N, 3]";
x3::rule<data_class, ast::DataDecl> const data_decl = "a data declaration";
x3::rule<field_class, ast::FieldDecl> const field_decl = "an input declaration";
x3::rule<param_class, ast::ParamDecl> const param_decl = "a parameter declaration";
x3::rule<sequence_class, ast::SequenceDecl> const sequence_decl = "a sequence";
x3::rule<let_class, ast::LetDecl> const let_decl = "a definition";
x3::rule<loss_class, ast::LossDecl> const loss_decl = "a loss";
x3::rule<optimizer_class, ast::OptimizerDecl> const optimizer_decl = "an optimizer";
x3::rule<train_class, ast::TrainDecl> const train_decl = "training settings";
x3::rule<report_class, ast::ReportDecl> const report_decl = "a report line";
x3::rule<print_class, ast::PrintDecl> const print_decl = "a print statement";
x3::rule<statement_class, ast::Statement> const statement = "a statement";

// ---- lexical ---------------------------------------------------------------

// Character classes as explicit ASCII sets: X3's classifiers (alnum, space)
// assert on bytes outside ASCII, and a .nn file may contain any byte.
auto const wordStart = x3::char_("a-zA-Z_");
auto const wordChar = x3::char_("a-zA-Z0-9_");
auto const blank = x3::char_(" \t\r\n\f\v");

// A keyword is a whole word: `data` does not match the start of `database`.
inline auto kw(char const *word) {
  return x3::lexeme[x3::lit(word) >> !wordChar];
}
inline auto kwString(char const *word) {
  return x3::lexeme[x3::string(word) >> !wordChar];
}

// `->`, and a '-' that is not the start of one.
auto const arrow = x3::lit("->");
auto const minus = x3::char_('-') >> !x3::lit('>');

// Unsigned reals only: unary minus is an AST node.
x3::real_parser<double, x3::ureal_policies<double>> const ureal;

// ident   = (letter | "_") {letter | digit | "_"}
auto const name_def = x3::lexeme[wordStart >> *wordChar];
auto const ident_def = name;
// number  = unsigned real, e.g. 2000, 1e-6, .5
auto const number_def = ureal;
// string  = '"' {any character but '"' and newline} '"'
auto const string_lit_def =
    x3::lexeme['"' > *(x3::char_ - '"' - x3::eol) > '"'];

// ---- expressions -----------------------------------------------------------

// arg     = [ident "="] expr
auto const arg_def =
    ((&(name >> '=' >> !x3::lit('=')) >> name >> '=') | x3::attr(std::string())) >>
    expr;
// call    = ident "(" [arg {"," arg}] ")"
auto const call_def = name >> '(' > -(arg % ',') > ')';
// layer   = ident ["(" [arg {"," arg}] ")"]
auto const layer_def = name >> -('(' > -(arg % ',') > ')');
// paren   = "(" expr ")"
auto const paren_def = '(' > expr > ')';
// list    = "[" [expr {"," expr}] "]"
auto const list_def = '[' > -(expr % ',') > ']';
// primary = call | ident | number | string | paren | list
auto const primary_def = call | ident | number | string_lit | paren | list;
// power   = primary ["^" factor]            (right associative)
auto const power_def = primary[setFirst] >> -(('^' > factor)[makePower]);
// unary   = "-" factor
auto const unary_def = minus > factor;
// factor  = unary | power                   (depth guarded)
auto const factor_def = guard[unary | power];
// product = factor {("*" | "/" | "@") factor}
auto const mul_link_def = x3::char_("*/@") > factor;
auto const product_def = factor[setFirst] >> *(mul_link[appendLink]);
// sum     = product {("+" | "-") product}
auto const add_link_def = (x3::char_('+') | minus) > product;
auto const sum_def = product[setFirst] >> *(add_link[appendLink]);
// pipe    = sum {"->" layer}
auto const pipe_def = sum[setFirst] >> *((arrow > layer)[appendLayer]);
// expr    = pipe
auto const expr_def = pipe;

// ---- statements ------------------------------------------------------------

// dim       = integer | ident
auto const dim_def = (x3::attr(std::string()) >> x3::int64) |
                     (name >> x3::attr(int64_t(0)));
// type      = [ident] "[" [dim {"," dim}] "]"
auto const tensor_type_def =
    (name | x3::attr(std::string())) >> '[' > -(dim % ',') > ']';
// data      = "data" call
auto const data_decl_def = kw("data") > call;
// field     = ("input" | "target") ident ":" type
auto const field_decl_def =
    (kwString("input") | kwString("target")) > ident > ':' > tensor_type;
// param     = "param" ident [":" type] "=" expr
auto const param_decl_def =
    kw("param") > ident > -(':' > tensor_type) > '=' > expr;
// sequence  = "sequence" ident "=" layer {"->" layer}
auto const sequence_decl_def =
    kw("sequence") > ident > '=' > (layer % arrow);
// loss      = "loss" expr
auto const loss_decl_def = kw("loss") > expr;
// optimizer = "optimizer" call
auto const optimizer_decl_def = kw("optimizer") > call;
// train     = "train" arg {"," arg}
auto const train_decl_def = kw("train") > (arg % ',');
// report    = "report" string
auto const report_decl_def = kw("report") > string_lit;
// print     = "print" expr
auto const print_decl_def = kw("print") > expr;
// let       = ident "=" expr
auto const let_decl_def = ident > '=' > expr;
// statement = data | field | param | sequence | loss | optimizer | train
//           | report | print | let
auto const statement_def = data_decl | field_decl | param_decl |
                           sequence_decl | loss_decl | optimizer_decl |
                           train_decl | report_decl | print_decl | let_decl;

BOOST_SPIRIT_DEFINE(number, ident, name, string_lit, arg, call, layer, unary,
                    add_link, mul_link, paren, list, expr, pipe, sum, product,
                    factor, power, primary, dim, tensor_type, data_decl,
                    field_decl, param_decl, sequence_decl, let_decl, loss_decl,
                    optimizer_decl, train_decl, report_decl, print_decl, statement)

// Whitespace (newlines included) and `#` comments to the end of the line.
auto const skipper =
    blank | x3::lexeme['#' >> *(x3::char_ - x3::eol) >> (x3::eol | x3::eoi)];

} // namespace netc::grammar
