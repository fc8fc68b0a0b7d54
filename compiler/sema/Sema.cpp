// Sema.cpp - names, layers, shapes: from ast::Program to a checked Model.
//
// The walk, statement by statement in source order:
//   1. `data` picks the data source and its options; `input`/`target` bind
//      the source's fields to names and check their declared shapes.
//   2. `param` and `sequence` create Param nodes (sequences follow PyTorch's
//      nn.Sequential naming: every element takes the next index).
//   3. `name = expr` and `loss expr` lower expressions to graph nodes,
//      checking shapes with the graph's shape rules.
//   4. `optimizer`, `train` and `report` are checked and recorded.
// Expressions that fail yield kNoValue, which later uses accept silently so
// one mistake gives one diagnostic.
#include "compiler/sema/SemaImpl.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>

namespace netc {

namespace sema {

/// "a, b ,c" -> {"a", "b", "c"}: comma-separated items, spaces trimmed.
std::vector<std::string> splitList(const std::string &text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string item =
        text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    out.push_back(item);
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return out;
}

/// netc's name for a PyTorch spelling (nn.ReLU, CrossEntropyLoss, ...), or null.
const char *netcSpelling(std::string_view word) {
  static constexpr std::pair<std::string_view, const char *> kSpellings[] = {
      {"ReLU", "relu"},
      {"Sigmoid", "sigmoid"},
      {"Tanh", "tanh"},
      {"Linear", "linear(in, out)"},
      {"Flatten", "flatten"},
      {"Softmax", "softmax"},
      {"LogSoftmax", "log_softmax"},
      {"log_softmax_", "log_softmax"},
      {"Sequential", "sequence NAME = layer -> layer"},
      {"CrossEntropyLoss", "cross_entropy(scores, labels)"},
      {"MSELoss", "mse(prediction, target)"},
      {"L1Loss", "l1(prediction, target)"},
      {"NLLLoss", "nll(log_probs, labels)"},
      {"BCELoss", "bce(probabilities, target)"},
      {"BCEWithLogitsLoss", "bce_with_logits(scores, target)"},
      {"SGD", "sgd(lr = ...)"},
      {"Adam", "adam(lr = ...)"},
      {"AdamW", "adamw(lr = ...)"},
      {"RMSprop", "rmsprop(lr = ...)"},
      {"matmul", "a @ b"},
      {"mm", "a @ b"},
      {"pow", "x^k"},
      {"mean_squared_error", "mse(prediction, target)"},
  };
  for (const auto &[theirs, ours] : kSpellings)
    if (word == theirs)
      return ours;
  return nullptr;
}

bool Sema::declare(const ast::Ident &name) {
  auto it = scope_.find(name.name);
  if (it != scope_.end()) {
    diags_.error(name.loc, fmt::format("'{}' is already defined", name.name));
    diags_.note(it->second.loc, "first defined here");
    return false;
  }
  if (isReservedName(name.name)) {
    diags_.error(name.loc, fmt::format("'{}' is a built-in name", name.name));
    return false;
  }
  return true;
}

void Sema::suggest(std::string_view word, const std::vector<std::string> &names) {
  if (const char *ours = netcSpelling(word)) {
    diags_.note(fmt::format("PyTorch's {} is written {} in netc", word, ours));
    return;
  }
  std::string best = closestMatch(word, names);
  if (!best.empty())
    diags_.note(fmt::format("did you mean '{}'?", best));
}

std::vector<std::string> Sema::valueNames() const {
  std::vector<std::string> names;
  for (const auto &[n, b] : scope_)
    if (b.kind == Binding::Kind::Value)
      names.push_back(n);
  names.push_back("pi");
  return names;
}

std::optional<Shape> Sema::declaredShape(const ast::TensorType &t, bool allowBatch) {
  if (!t.dtype.empty() && t.dtype != "f32" && t.dtype != "i64") {
    diags_.error(t.loc, fmt::format("unknown element type '{}'", t.dtype));
    suggest(t.dtype, {"f32", "i64"});
    return std::nullopt;
  }
  Shape s;
  for (const auto &d : t.dims) {
    if (d.symbol.empty()) {
      if (d.size <= 0 || d.size > (int64_t(1) << 31)) {
        diags_.error(d.loc, "a dimension must be between 1 and 2^31");
        return std::nullopt;
      }
      s.dims.push_back(d.size);
      continue;
    }
    if (!allowBatch) {
      diags_.error(d.loc, "parameters cannot have the batch dimension");
      return std::nullopt;
    }
    if (!batchName_.empty() && d.symbol != batchName_) {
      diags_.error(d.loc, fmt::format("only one symbolic dimension is "
                                      "supported, the batch '{}'",
                                      batchName_));
      return std::nullopt;
    }
    batchName_ = d.symbol;
    s.dims.push_back(kBatch);
  }
  if (s.hasBatch() && std::count(s.dims.begin(), s.dims.end(), kBatch) > 1) {
    diags_.error(t.loc, "the batch dimension may appear only once");
    return std::nullopt;
  }
  return s;
}

ValueId Sema::addParam(const std::string &name, const Shape &shape, InitSpec init, ast::Loc loc) {
  Attrs a;
  a.name = name;
  a.shape = shape;
  a.k = static_cast<int64_t>(model_.params.size());
  ValueId v = model_.graph.add(Op::Param, {}, a, loc);
  model_.params.push_back({name, shape, init, v});
  return v;
}

ValueId Sema::addBuffer(const std::string &name, const Shape &shape, double init, bool integer,
                        ast::Loc loc) {
  Attrs a;
  a.name = name;
  a.shape = shape;
  a.k = static_cast<int64_t>(model_.buffers.size());
  ValueId v = model_.graph.add(Op::Buffer, {}, a, loc);
  model_.buffers.push_back({name, shape, init, integer, v});
  return v;
}

std::optional<InitSpec> Sema::initializer(const ast::Expr &e) {
  using K = InitSpec::Kind;
  if (auto value = constValue(e, /*quiet=*/true))
    return InitSpec{K::Constant, *value, 0};
  const auto *fa = boost::get<boost::spirit::x3::forward_ast<ast::Call>>(&e);
  if (!fa) {
    diags_.error(locOf(e), "a parameter is initialised with a number or an "
                           "initializer such as randn()");
    return std::nullopt;
  }
  const ast::Call &c = fa->get();
  auto bind = [&](Signature sig) { return bindArgs(c.loc, c.callee, c.args, sig); };
  if (c.callee == "randn") {
    if (!bind({}))
      return std::nullopt;
    return InitSpec{K::Normal, 0, 1};
  }
  if (c.callee == "rand") {
    if (!bind({}))
      return std::nullopt;
    return InitSpec{K::Uniform, 0, 1};
  }
  if (c.callee == "zeros" || c.callee == "ones") {
    if (!bind({}))
      return std::nullopt;
    return InitSpec{K::Constant, c.callee == "ones" ? 1.0 : 0.0, 0};
  }
  if (c.callee == "normal") {
    auto v = bind({{{"mean", 0.0}, {"std", 1.0}}});
    if (!v)
      return std::nullopt;
    if (!((*v)[1] >= 0)) {
      diags_.error(c.loc, "std must not be negative");
      return std::nullopt;
    }
    return InitSpec{K::Normal, (*v)[0], (*v)[1]};
  }
  if (c.callee == "uniform") {
    auto v = bind({{{"low", std::nullopt}, {"high", std::nullopt}}});
    if (!v)
      return std::nullopt;
    if (!((*v)[0] <= (*v)[1])) {
      diags_.error(c.loc, "uniform needs low <= high");
      return std::nullopt;
    }
    return InitSpec{K::Uniform, (*v)[0], (*v)[1]};
  }
  if (c.callee == "kaiming_uniform") {
    auto v = bind({{{"fan_in", std::nullopt}}});
    if (!v)
      return std::nullopt;
    if (!((*v)[0] >= 1)) {
      diags_.error(c.loc, "fan_in must be at least 1");
      return std::nullopt;
    }
    double bound = 1.0 / std::sqrt((*v)[0]);
    return InitSpec{K::Uniform, -bound, bound};
  }
  diags_.error(c.loc, fmt::format("unknown initializer '{}'", c.callee));
  suggest(c.callee, builtinNames(BuiltinKind::Initializer));
  return std::nullopt;
}

ast::Loc Sema::argLoc(const ast::Call &c, std::string_view key, size_t position) {
  for (size_t i = 0; i < c.args.size(); ++i)
    if (c.args[i].key == key || (c.args[i].key.empty() && i == position))
      return c.args[i].loc;
  return c.loc;
}

std::optional<std::vector<size_t>> Sema::matchArgs(const std::vector<ast::Arg> &args,
                                                   const std::vector<std::string> &names,
                                                   std::string_view callee, const char *noun,
                                                   const std::string &tooMany, bool &ok) {
  std::vector<size_t> slots(args.size(), names.size());
  std::vector<bool> given(names.size());
  bool sawKeyword = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const ast::Arg &a = args[i];
    size_t slot = i;
    if (!a.key.empty()) {
      sawKeyword = true;
      auto it = std::find(names.begin(), names.end(), a.key);
      if (it == names.end()) {
        diags_.error(a.loc, fmt::format("'{}' has no {} '{}'", callee, noun, a.key));
        suggest(a.key, names);
        ok = false;
        continue;
      }
      slot = static_cast<size_t>(it - names.begin());
    } else if (sawKeyword) {
      diags_.error(a.loc, "a positional argument cannot follow a named one");
      ok = false;
      continue;
    } else if (slot >= names.size()) {
      diags_.error(a.loc, tooMany);
      return std::nullopt;
    }
    if (given[slot]) {
      diags_.error(a.loc, fmt::format("{} '{}' given twice", noun, names[slot]));
      ok = false;
      continue;
    }
    given[slot] = true;
    slots[i] = slot;
  }
  return slots;
}

std::optional<std::vector<double>> Sema::bindArgs(ast::Loc callLoc, std::string_view callee,
                                                  const std::vector<ast::Arg> &args,
                                                  const Signature &sig) {
  std::vector<std::string> names;
  for (const auto &p : sig.params)
    names.push_back(p.name);
  bool ok = true;
  auto slots = matchArgs(args, names, callee, "argument",
                         fmt::format("'{}' takes {}, got {}", callee,
                                     counted(sig.params.size(), "argument"), args.size()),
                         ok);
  if (!slots)
    return std::nullopt;
  std::vector<std::optional<double>> values(sig.params.size());
  for (size_t i = 0; i < args.size(); ++i) {
    if ((*slots)[i] == names.size())
      continue; // reported
    auto v = constValue(args[i].value, /*quiet=*/false);
    if (!v) {
      ok = false;
      continue;
    }
    values[(*slots)[i]] = *v;
  }
  std::vector<double> out;
  for (size_t i = 0; i < sig.params.size(); ++i) {
    if (values[i]) {
      out.push_back(*values[i]);
    } else if (sig.params[i].defaultValue) {
      out.push_back(*sig.params[i].defaultValue);
    } else {
      if (ok)
        diags_.error(callLoc,
                     fmt::format("'{}' needs the argument '{}'", callee, sig.params[i].name));
      ok = false;
    }
  }
  if (!ok)
    return std::nullopt;
  return out;
}

std::optional<double> Sema::constValue(const ast::Expr &e, bool quiet) {
  auto v = boost::apply_visitor(Eval{*this, quiet}, e);
  if (v && !std::isfinite(*v)) {
    if (!quiet)
      diags_.error(locOf(e), "this constant is not finite");
    return std::nullopt;
  }
  return v;
}

} // namespace sema

std::optional<Model> checkProgram(const ast::Program &program, std::string modelName,
                                  DiagnosticEngine &diags, std::string sourceDir) {
  return sema::Sema(std::move(modelName), std::move(sourceDir), diags).run(program);
}

} // namespace netc
