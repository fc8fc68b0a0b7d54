// SemaStatements.cpp - the statements (but data), the report line, and the checks that
// need the whole file.
#include "compiler/sema/SemaImpl.h"
#include "dsl/Parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>

namespace netc::sema {

void Sema::statement(const ast::ParamDecl &s) {
  Shape shape;
  if (s.shape) {
    auto declared = declaredShape(*s.shape, /*allowBatch=*/false);
    if (!declared)
      return;
    if (!s.shape->dtype.empty() && s.shape->dtype != "f32") {
      diags_.error(s.shape->loc, "parameters are f32");
      return;
    }
    shape = *declared;
  }
  // A parameter with a bad initializer is still declared, so its uses do
  // not cascade into more errors (the model is rejected anyway).
  auto init = initializer(s.init);
  if (!declare(s.name))
    return;
  ValueId v = addParam(s.name.name, shape, init.value_or(InitSpec{}), s.name.loc);
  scope_[s.name.name] = {Binding::Kind::Value, v, 0, s.name.loc};
}

void Sema::statement(const ast::SequenceDecl &s) {
  if (!declare(s.name))
    return;
  Sequence seq{s.name.name, {}};
  bool ok = true;
  for (size_t i = 0; i < s.layers.size(); ++i) {
    auto layer = makeLayer(s.layers[i], fmt::format("{}.{}.", s.name.name, i));
    if (!layer) {
      ok = false;
      continue;
    }
    seq.layers.push_back(std::move(*layer));
  }
  seq.broken = !ok; // still declared: its uses add no follow-on errors
  sequences_.push_back(std::move(seq));
  scope_[s.name.name] = {Binding::Kind::Sequence, kNoValue, sequences_.size() - 1, s.name.loc};
}

void Sema::statement(const ast::LetDecl &s) {
  ValueId v = expr(s.value);
  if (!declare(s.name))
    return;
  if (v != kNoValue && opKind(model_.graph.node(v).op) != OpKind::Leaf)
    model_.graph.setLabel(v, s.name.name);
  scope_[s.name.name] = {Binding::Kind::Value, v, 0, s.name.loc};
}

void Sema::statement(const ast::LossDecl &s) {
  if (loss_ != kNoValue || lossLoc_.end) {
    diags_.error(s.loc, "only one loss is allowed");
    return;
  }
  lossLoc_ = s.loc;
  ValueId v = expr(s.value);
  if (v == kNoValue)
    return;
  if (model_.graph.shape(v).rank() != 0) {
    diags_.error(locOf(s.value),
                 fmt::format("the loss must be a scalar, this is {}", model_.graph.shape(v).str()));
    diags_.note("reduce it with sum(...) or mean(...)");
    return;
  }
  loss_ = v;
}

void Sema::statement(const ast::OptimizerDecl &s) {
  if (seenOptimizer_) {
    diags_.error(s.loc, "only one optimizer is allowed");
    return;
  }
  seenOptimizer_ = true;
  const ast::Call &c = s.config;
  OptimizerSpec &o = model_.optimizer;
  auto bind = [&](Signature sig) { return bindArgs(c.loc, c.callee, c.args, sig); };
  if (c.callee == "sgd") {
    auto v = bind({{{"lr", std::nullopt},
                    {"momentum", 0.0},
                    {"weight_decay", 0.0},
                    {"nesterov", 0.0},
                    {"dampening", 0.0}}});
    if (!v)
      return;
    o.kind = "sgd";
    o.lr = (*v)[0];
    o.momentum = (*v)[1];
    o.weightDecay = (*v)[2];
    o.nesterov = (*v)[3] != 0;
    o.dampening = (*v)[4];
    if (o.nesterov && (o.momentum == 0 || o.dampening != 0))
      diags_.error(c.loc, "nesterov needs a momentum above 0 and no dampening");
    if (o.dampening < 0 || o.dampening > 1)
      diags_.error(c.loc, "dampening must be in [0, 1]");
  } else if (c.callee == "rmsprop") {
    auto v = bind({{{"lr", 0.01},
                    {"alpha", 0.99},
                    {"eps", 1e-8},
                    {"weight_decay", 0.0},
                    {"momentum", 0.0},
                    {"centered", 0.0}}});
    if (!v)
      return;
    o.kind = "rmsprop";
    o.lr = (*v)[0];
    o.alpha = (*v)[1];
    o.eps = (*v)[2];
    o.weightDecay = (*v)[3];
    o.momentum = (*v)[4];
    o.centered = (*v)[5] != 0;
  } else if (c.callee == "adam" || c.callee == "adamw") {
    bool w = c.callee == "adamw";
    auto v = bind({{{"lr", 1e-3},
                    {"beta1", 0.9},
                    {"beta2", 0.999},
                    {"eps", 1e-8},
                    {"weight_decay", w ? 1e-2 : 0.0},
                    {"amsgrad", 0.0}}});
    if (!v)
      return;
    o.kind = c.callee;
    o.lr = (*v)[0];
    o.beta1 = (*v)[1];
    o.beta2 = (*v)[2];
    o.eps = (*v)[3];
    o.weightDecay = (*v)[4];
    o.amsgrad = (*v)[5] != 0;
  } else {
    diags_.error(c.loc, fmt::format("unknown optimizer '{}'", c.callee));
    suggest(c.callee, builtinNames(BuiltinKind::Optimizer));
    return;
  }
  auto check = [&](bool ok, const char *message) {
    if (!ok)
      diags_.error(c.loc, message);
  };
  if (!(o.lr > 0) || !std::isfinite(o.lr))
    diags_.error(argLoc(c, "lr", 0), "the learning rate must be positive");
  check(o.momentum >= 0 && o.momentum < 1, "momentum must be in [0, 1)");
  check(o.alpha >= 0 && o.alpha < 1, "alpha must be in [0, 1)");
  check(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1,
        "beta1 and beta2 must be in [0, 1)");
  check(o.eps > 0, "eps must be positive");
  check(o.weightDecay >= 0 && std::isfinite(o.weightDecay), "weight_decay must not be negative");
}

void Sema::statement(const ast::TrainDecl &s) {
  if (seenTrain_) {
    diags_.error(s.loc, "only one train statement is allowed");
    return;
  }
  seenTrain_ = true;
  auto v = bindArgs(
      s.loc, "train", s.settings,
      Signature{{{"steps", 1000.0}, {"report_every", 100.0}, {"seed", 0.0}, {"epochs", 0.0}}});
  if (!v)
    return;
  auto whole = [&](double x, double lo, const char *what) {
    if (x < lo || x > 1e15 || x != std::floor(x)) {
      diags_.error(s.loc, fmt::format("{} must be a whole number >= {}", what, lo));
      return false;
    }
    return true;
  };
  if (whole((*v)[0], 1, "steps"))
    model_.train.steps = static_cast<int64_t>((*v)[0]);
  if (whole((*v)[1], 1, "report_every"))
    model_.train.reportEvery = static_cast<int64_t>((*v)[1]);
  if (whole((*v)[2], 0, "seed"))
    model_.train.seed = static_cast<uint64_t>((*v)[2]);
  if (whole((*v)[3], 0, "epochs"))
    model_.train.epochs = static_cast<int64_t>((*v)[3]);
}

void Sema::statement(const ast::PrintDecl &s) {
  ValueId v = expr(s.value);
  if (v == kNoValue)
    return;
  ast::Loc loc = locOf(s.value);
  const std::string &text = diags_.file().text();
  std::string source = text.substr(loc.begin, loc.end - loc.begin);
  // One line: continuation lines joined by single spaces.
  std::string line;
  for (char ch : source) {
    bool blank = ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ';
    if (!(blank && (line.empty() || line.back() == ' ')))
      line += blank ? ' ' : ch;
  }
  while (!line.empty() && line.back() == ' ')
    line.pop_back();
  model_.prints.push_back({line, v});
}

void Sema::statement(const ast::ReportDecl &s) {
  if (!reports_.empty()) {
    diags_.error(s.loc, "only one report line is allowed");
    return;
  }
  reports_.push_back(s.text);
}

void Sema::finish() {
  if (!seenData_)
    diags_.error({0, 0}, "no data declaration (e.g. `data sine(points = 2000)`)");
  // A program without parameters computes and prints; it needs no loss
  // and no optimizer.
  bool trains = !model_.params.empty();
  // What is missing would come at the end: point there.
  const std::string &text = diags_.file().text();
  size_t last = text.find_last_not_of(" \t\r\n");
  auto after = static_cast<uint32_t>(last == std::string::npos ? 0 : last + 1);
  ast::Loc atEnd{after, after};
  if (trains && loss_ == kNoValue && !lossLoc_.end)
    diags_.error(atEnd, "no loss (e.g. `loss mse(y_pred, y)`)");
  if (trains && !seenOptimizer_)
    diags_.error(atEnd, "no optimizer (e.g. `optimizer sgd(lr = 1e-3)`)");
  if (!trains && loss_ == kNoValue && !lossLoc_.end && model_.prints.empty())
    diags_.error({0, 0}, "nothing to do: the model has no parameters to train, no loss and "
                         "nothing to print (e.g. `print mse(y_pred, y)`)");
  if (!trains && !seenOptimizer_)
    model_.optimizer.kind = "none";
  for (const auto &r : reports_)
    reportLine(r);
  model_.lossGiven = loss_ != kNoValue;
  if (loss_ != kNoValue)
    warnUnusedParams();
  if (loss_ == kNoValue && !trains) // every entry point returns a loss
    loss_ = model_.graph.constant(0.0);
  if (loss_ != kNoValue)
    model_.graph.outputs.push_back({"loss", loss_});
  if (model_.prediction.value != kNoValue)
    model_.graph.outputs.push_back({"prediction", model_.prediction.value});
  for (size_t i = 0; i < model_.prints.size(); ++i)
    model_.graph.outputs.push_back({"print " + std::to_string(i), model_.prints[i].value});
  for (size_t i = 0; i < model_.report.size(); ++i)
    if (model_.report[i].value != kNoValue)
      model_.graph.outputs.push_back({"report " + std::to_string(i), model_.report[i].value});
}

void Sema::warnUnusedParams() {
  const Graph &g = model_.graph;
  std::vector<bool> used(g.size(), false);
  used[static_cast<size_t>(loss_)] = true;
  for (auto id = loss_; id >= 0; --id)
    if (used[static_cast<size_t>(id)])
      for (ValueId in : g.node(id).inputs)
        used[static_cast<size_t>(in)] = true;
  for (const ParamSpec &p : model_.params)
    if (!used[static_cast<size_t>(p.value)]) {
      diags_.warning(
          g.node(p.value).loc,
          fmt::format("the loss does not depend on '{}': training will not change it", p.name));
    }
}

bool Sema::namesParameter(const std::string &inside) const {
  std::string name = inside.substr(0, inside.find('['));
  name.erase(0, name.find_first_not_of(' '));
  name.erase(name.find_last_not_of(' ') + 1);
  return std::any_of(model_.params.begin(), model_.params.end(),
                     [&](const ParamSpec &p) { return p.name == name; });
}

std::optional<ReportPiece> Sema::reportExpression(ast::Loc loc) {
  ast::Loc inner{loc.begin + 1, loc.end - 1}; // inside the braces
  auto e = parseExpression(diags_.file(), inner, diags_);
  if (!e)
    return std::nullopt;
  ValueId v = expr(*e);
  if (v == kNoValue)
    return std::nullopt;
  if (model_.graph.shape(v).rank() != 0) {
    diags_.error(inner, fmt::format("a report placeholder is one number; this is {}",
                                    model_.graph.shape(v).str()));
    diags_.note("reduce it, e.g. {sum(...)} or {mean(...)}, or pick an element of a "
                "parameter: {w[0, 1]}");
    return std::nullopt;
  }
  ReportPiece piece;
  piece.value = v;
  return piece;
}

void Sema::reportLine(const ast::StringLit &s) {
  const std::string &t = s.text;
  size_t i = 0;
  std::string text;
  auto at = [&](size_t from, size_t to) {
    // +1: the opening quote
    return ast::Loc{static_cast<uint32_t>(s.loc.begin + 1 + from),
                    static_cast<uint32_t>(s.loc.begin + 1 + to)};
  };
  while (i < t.size()) {
    if (t[i] != '{') {
      text += t[i++];
      continue;
    }
    size_t close = t.find('}', i);
    if (close == std::string::npos) {
      diags_.error(at(i, i + 1), "unclosed '{' in the report line");
      return;
    }
    if (!text.empty())
      model_.report.push_back({text, -1, 0});
    text.clear();
    auto piece = placeholder(t.substr(i + 1, close - i - 1), at(i, close + 1));
    if (piece)
      model_.report.push_back(*piece);
    i = close + 1;
  }
  if (!text.empty())
    model_.report.push_back({text, -1, 0});
}

std::optional<ReportPiece> Sema::placeholder(std::string inside, ast::Loc loc) {
  if (!namesParameter(inside))
    return reportExpression(loc);
  std::string name = inside;
  std::vector<int64_t> index;
  size_t bracket = inside.find('[');
  if (bracket != std::string::npos) {
    name = inside.substr(0, bracket);
    size_t close = inside.find(']', bracket);
    if (close == std::string::npos || close + 1 != inside.size()) {
      diags_.error(loc, "expected {name} or {name[i, j]}");
      return std::nullopt;
    }
    for (const std::string &item : splitList(inside.substr(bracket + 1, close - bracket - 1))) {
      if (item.empty() || item.size() > 12 ||
          item.find_first_not_of("0123456789") != std::string::npos) {
        diags_.error(loc, "indices in a report placeholder are whole numbers");
        return std::nullopt;
      }
      index.push_back(std::stoll(item));
    }
  }
  name.erase(0, name.find_first_not_of(' '));
  name.erase(name.find_last_not_of(' ') + 1);
  for (size_t p = 0; p < model_.params.size(); ++p) {
    const ParamSpec &spec = model_.params[p];
    if (spec.name != name)
      continue;
    if (index.size() != spec.shape.rank()) {
      diags_.error(loc, fmt::format("'{}' has shape {}; give {} to "
                                    "pick one number",
                                    name, spec.shape.str(),
                                    counted(spec.shape.rank(), "index", "indices")));
      return std::nullopt;
    }
    int64_t flat = 0;
    for (size_t d = 0; d < index.size(); ++d) {
      if (index[d] >= spec.shape.dims[d]) {
        diags_.error(loc, fmt::format("index {} is out of range for '{}' of "
                                      "shape {}",
                                      index[d], name, spec.shape.str()));
        return std::nullopt;
      }
      flat = flat * spec.shape.dims[d] + index[d];
    }
    return ReportPiece{{}, static_cast<int>(p), flat};
  }
  std::vector<std::string> names;
  for (const auto &spec : model_.params)
    names.push_back(spec.name);
  diags_.error(loc, fmt::format("the report names '{}', which is not a parameter", name));
  suggest(name, names);
  return std::nullopt;
}

} // namespace netc::sema
