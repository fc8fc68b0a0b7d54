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
#include "compiler/sema/Sema.h"
#include "compiler/sema/Builtins.h"
#include "compiler/sema/DataSources.h"

#include <fmt/format.h>

#include <cassert>
#include <cmath>
#include <map>
#include <set>

namespace netc {

namespace {

constexpr double kPi = 3.14159265358979323846;

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

/// `path` without "." and "dir/.." components (lexically, as a user reads it).
std::string normalizedPath(const std::string &path) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    std::string part = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    if (part == ".." && !parts.empty() && parts.back() != "..")
      parts.pop_back();
    else if (!part.empty() && part != ".")
      parts.push_back(part);
    if (slash == std::string::npos)
      break;
    pos = slash + 1;
  }
  std::string out = path.size() && path[0] == '/' ? "/" : "";
  for (size_t i = 0; i < parts.size(); ++i)
    out += (i ? "/" : "") + parts[i];
  return out.empty() ? "." : out;
}


/// Declared arguments of a call: positional names in order, with defaults.
struct Signature {
  struct Param {
    std::string name;
    std::optional<double> defaultValue; ///< nullopt: required
  };
  std::vector<Param> params;
};

/// What a name refers to.
struct Binding {
  enum class Kind { Value, Sequence } kind = Kind::Value;
  ValueId value = kNoValue;
  size_t sequence = 0;
  ast::Loc loc;
};

/// One instantiated layer: its kind, numeric arguments and parameters.
struct Layer {
  const Builtin *row; ///< its row in the registry
  std::string kind;
  std::vector<double> args;
  std::vector<ValueId> params; ///< weight, bias for linear
  ast::Loc loc;
};

struct Sequence {
  std::string name;
  std::vector<Layer> layers;
  bool broken = false; ///< a layer was wrong (reported): applying it is silent
};

class Sema {
public:
  Sema(std::string modelName, std::string sourceDir, DiagnosticEngine &diags)
      : diags_(diags), sourceDir_(std::move(sourceDir)) {
    model_.name = std::move(modelName);
  }

  std::optional<Model> run(const ast::Program &program) {
    for (const auto &s : program.statements) {
      if (diags_.tooManyErrors())
        break;
      boost::apply_visitor([&](const auto &node) { statement(node); }, s);
    }
    finish();
    if (diags_.hasErrors())
      return std::nullopt;
    return std::move(model_);
  }

private:
  // ---- statements ----------------------------------------------------------

  void statement(const ast::DataDecl &s) {
    if (seenData_) {
      diags_.error(s.loc, "only one data declaration is allowed");
      return;
    }
    seenData_ = true;
    const ast::Call &c = s.source;
    const SourceSpec *spec = findDataSource(c.callee);
    if (!spec) {
      diags_.error(c.loc, fmt::format("unknown data source '{}'", c.callee));
      std::vector<std::string> names;
      for (const SourceSpec &row : dataSources())
        names.push_back(row.name);
      suggest(c.callee, names);
      return;
    }
    source_ = spec;
    model_.data.source = spec->name;
    // The fields exist even if the options are wrong, so later statements
    // do not cascade into "unknown name" errors.
    for (const SourceField &f : spec->fixed)
      available_[f.name] = {f.shape, f.dtype};
    openFields_ = spec->fields == SourceSpec::Fields::Declared ||
                  spec->fields == SourceSpec::Fields::Pair;
    std::vector<ast::Arg> options = c.args;
    if (spec->fields == SourceSpec::Fields::Inline)
      options = inlineData(c, *spec);
    if (!sourceOptions(c, *spec, options))
      return;
    if (!spec->pathOption.empty())
      model_.data.path = model_.data.texts[spec->pathOption];
    if (model_.data.numbers.count("batch"))
      model_.data.batch = static_cast<int64_t>(model_.data.numbers["batch"]);
  }

  /// Binds the options of a data statement to the source's row: keyword or
  /// positional, each of its kind; fills in the defaults; resolves paths
  /// against the .nn file's folder. False after an error.
  bool sourceOptions(const ast::Call &c, const SourceSpec &spec,
                     const std::vector<ast::Arg> &args) {
    std::vector<std::string> names;
    for (const SourceOption &o : spec.options)
      names.push_back(o.name);
    std::vector<bool> given(spec.options.size());
    bool ok = true, sawKeyword = false;
    for (size_t i = 0; i < args.size(); ++i) {
      const ast::Arg &a = args[i];
      size_t slot = i;
      if (!a.key.empty()) {
        sawKeyword = true;
        auto it = std::find(names.begin(), names.end(), a.key);
        if (it == names.end()) {
          diags_.error(a.loc, fmt::format("'{}' has no option '{}'", spec.name, a.key));
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
        diags_.error(a.loc, fmt::format("'{}' takes at most {} options; e.g. `{}`", spec.name,
                                        names.size(), spec.example));
        return false;
      }
      if (given[slot]) {
        diags_.error(a.loc, fmt::format("option '{}' given twice", names[slot]));
        ok = false;
        continue;
      }
      given[slot] = true;
      ok = sourceOption(spec.options[slot], a) && ok;
    }
    for (size_t i = 0; i < spec.options.size(); ++i) {
      const SourceOption &o = spec.options[i];
      if (given[i])
        continue;
      if (o.required) {
        if (ok)
          diags_.error(c.loc, fmt::format("'{}' needs the option '{}' ({}), e.g. `{}`",
                                          spec.name, o.name, o.help, spec.example));
        ok = false;
        continue;
      }
      if (o.kind == SourceOption::Kind::Number)
        model_.data.numbers[o.name] = o.number;
      else if (o.kind == SourceOption::Kind::Classes && o.text.empty())
        model_.data.classes.clear();
      else if (o.kind == SourceOption::Kind::Classes)
        model_.data.classes = splitList(o.text);
      else
        model_.data.texts[o.name] = resolved(o, o.text);
    }
    return ok;
  }

  /// One option's value, checked for its kind and range.
  bool sourceOption(const SourceOption &o, const ast::Arg &a) {
    using K = SourceOption::Kind;
    const auto *text = boost::get<ast::StringLit>(&a.value);
    if (o.kind == K::Classes && text) {
      auto names = splitList(text->text);
      if (o.number > 0 && names.size() != static_cast<size_t>(o.number)) {
        diags_.error(a.loc, fmt::format("'{}' data has {} classes; this names {}",
                                        model_.data.source, o.number, names.size()));
        return false;
      }
      model_.data.classes = names;
      return true;
    }
    if (o.kind == K::Text || o.kind == K::Path) {
      if (!text) {
        diags_.error(a.loc, fmt::format("'{}' is a string: {} = \"...\" ({})", o.name, o.name,
                                        o.help));
        return false;
      }
      model_.data.texts[o.name] = resolved(o, text->text);
      return true;
    }
    auto v = constValue(a.value, /*quiet=*/false);
    if (!v)
      return false;
    auto whole = [&](double lo, double hi) {
      if (*v >= lo && *v <= hi && *v == std::floor(*v))
        return true;
      diags_.error(a.loc, fmt::format("{} must be a whole number from {} to {}", o.name, lo, hi));
      return false;
    };
    if (o.kind == K::Classes) {
      if (!whole(2, 1 << 20))
        return false;
      model_.data.classes.clear();
      for (int k = 0; k < static_cast<int>(*v); ++k)
        model_.data.classes.push_back(std::to_string(k));
      return true;
    }
    if (o.name == "batch" && !whole(0, 65536))
      return false;
    if ((o.name == "skip" || o.name == "split_seed") && !whole(0, 1e15))
      return false;
    if (o.name == "points" && !whole(2, 1e8))
      return false;
    if (o.name == "test" && !(*v >= 0 && *v < 1)) {
      diags_.error(a.loc, "test is the fraction held out for testing, from 0 up to (not "
                          "including) 1");
      return false;
    }
    model_.data.numbers[o.name] = *v;
    return true;
  }

  /// A path option relative to the .nn file's folder, made absolute.
  std::string resolved(const SourceOption &o, const std::string &path) const {
    if (o.kind != SourceOption::Kind::Path || path.empty() || path[0] == '/' ||
        sourceDir_.empty())
      return path;
    return normalizedPath(sourceDir_ + "/" + path);
  }

  // inline(x = 1.5, y = [0, 1], batch = 2): tensors given in the file; the
  // first dimension of every list is the batch, the same in all of them.
  // Returns the arguments that are options of the source (batch, test, ...),
  // not tensors.
  std::vector<ast::Arg> inlineData(const ast::Call &c, const SourceSpec &spec) {
    int64_t rows = -1;
    std::vector<ast::Arg> options;
    for (const auto &a : c.args) {
      if (std::any_of(spec.options.begin(), spec.options.end(),
                      [&](const SourceOption &o) { return o.name == a.key; })) {
        options.push_back(a);
        continue;
      }
      if (a.key.empty()) {
        diags_.error(a.loc, "inline data names each value: inline(x = 1.5, y = [0, 1])");
        continue;
      }
      InlineTensor t{a.key, {}, {}};
      if (!constTensor(a.value, t.shape, t.values, 0)) {
        brokenFields_.insert(a.key); // reported; its declaration stays quiet
        continue;
      }
      Shape declared = t.shape;
      if (declared.rank() > 0) {
        if (rows >= 0 && rows != declared.dims[0])
          diags_.error(a.loc, fmt::format("'{}' has {} rows, the other inline tensors {}", a.key,
                                          declared.dims[0], rows));
        rows = declared.dims[0];
        declared.dims[0] = kBatch;
      }
      // Whole numbers may be class labels (i64); the declaration decides.
      available_[a.key] = {declared, DType::F32};
      inlineWhole_[a.key] = std::all_of(t.values.begin(), t.values.end(),
                                        [](double v) { return v == std::floor(v); });
      model_.data.inlineTensors.push_back(std::move(t));
    }
    return options;
  }

  /// A number or a (nested, rectangular) list of numbers: its shape and its
  /// values, row-major.
  bool constTensor(const ast::Expr &e, Shape &shape, std::vector<double> &values, size_t depth) {
    const auto *list = boost::get<boost::spirit::x3::forward_ast<ast::List>>(&e);
    if (!list) {
      auto v = constValue(e, /*quiet=*/false);
      if (!v)
        return false;
      if (shape.rank() != depth) {
        diags_.error(locOf(e), "the rows of this list have different shapes");
        return false;
      }
      values.push_back(*v);
      return true;
    }
    const auto &items = list->get().items;
    if (items.empty()) {
      diags_.error(list->get().loc, "an empty list is not a tensor");
      return false;
    }
    if (shape.rank() == depth)
      shape.dims.push_back(static_cast<int64_t>(items.size()));
    else if (shape.rank() < depth || shape.dims[depth] != static_cast<int64_t>(items.size())) {
      diags_.error(list->get().loc, "the rows of this list have different lengths");
      return false;
    }
    for (const auto &item : items)
      if (!constTensor(item, shape, values, depth + 1))
        return false;
    return true;
  }

  void statement(const ast::FieldDecl &s) {
    if (!seenData_) {
      diags_.error(s.loc, fmt::format("'{}' before any data declaration", s.role));
      diags_.note("declare the data set first, e.g. `data sine(points = 2000)`");
      return;
    }
    if (available_.empty() && model_.data.source.empty())
      return; // the data declaration itself was wrong
    if (brokenFields_.count(s.name.name))
      return;
    auto shape = declaredShape(s.type, /*allowBatch=*/true);
    if (!shape)
      return;
    if (shape->hasBatch() && shape->dims[0] != kBatch) {
      diags_.error(s.type.loc, "the batch dimension must come first, e.g. f32[N, 4]");
      return;
    }
    if (source_ && source_->fields == SourceSpec::Fields::Pair) {
      for (const FieldSpec &f : model_.data.fields)
        if (f.role == s.role) {
          diags_.error(s.loc, fmt::format("'{}' data has one input and one target; '{}' is "
                                          "already its {}",
                                          model_.data.source, f.name, s.role));
          return;
        }
    }
    if (openFields_) // any tensor of the file, as declared
      available_[s.name.name] = {*shape, s.type.dtype == "i64" ? DType::I64 : DType::F32};
    // Inline whole numbers may be declared as class labels.
    if (inlineWhole_[s.name.name] && s.type.dtype == "i64" && available_.count(s.name.name))
      available_[s.name.name].second = DType::I64;
    auto it = available_.find(s.name.name);
    if (it == available_.end()) {
      std::vector<std::string> names;
      for (const auto &[n, _] : available_)
        names.push_back(n);
      diags_.error(s.name.loc, fmt::format("data source '{}' has no field '{}'",
                                           model_.data.source, s.name.name));
      suggest(s.name.name, names);
      return;
    }
    const auto &[fieldShape, fieldType] = it->second;
    if (s.type.dtype != dtypeName(fieldType)) {
      diags_.error(s.type.loc, fmt::format("field '{}' of '{}' is {}, not '{}'", s.name.name,
                                           model_.data.source, dtypeName(fieldType),
                                           s.type.dtype));
      return;
    }
    if (!(*shape == fieldShape)) {
      diags_.error(s.type.loc,
                   fmt::format("field '{}' of '{}' has shape {}, declared {}",
                               s.name.name, model_.data.source,
                               fieldShape.str(), shape->str()));
      return;
    }
    if (!declare(s.name))
      return;
    Attrs a;
    a.name = s.name.name;
    a.shape = *shape;
    a.k = static_cast<int64_t>(model_.data.fields.size());
    a.integer = fieldType == DType::I64;
    ValueId v = model_.graph.add(Op::Input, {}, a, s.name.loc);
    model_.data.fields.push_back({s.name.name, s.role, fieldType, *shape, v});
    scope_[s.name.name] = {Binding::Kind::Value, v, 0, s.name.loc};
  }

  void statement(const ast::ParamDecl &s) {
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

  void statement(const ast::SequenceDecl &s) {
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
    scope_[s.name.name] = {Binding::Kind::Sequence, kNoValue,
                           sequences_.size() - 1, s.name.loc};
  }

  void statement(const ast::LetDecl &s) {
    ValueId v = expr(s.value);
    if (!declare(s.name))
      return;
    if (v != kNoValue && opKind(model_.graph.node(v).op) != OpKind::Leaf)
      model_.graph.setLabel(v, s.name.name);
    scope_[s.name.name] = {Binding::Kind::Value, v, 0, s.name.loc};
  }

  void statement(const ast::LossDecl &s) {
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
                   fmt::format("the loss must be a scalar, this is {}",
                               model_.graph.shape(v).str()));
      diags_.note("reduce it with sum(...) or mean(...)");
      return;
    }
    loss_ = v;
  }

  void statement(const ast::OptimizerDecl &s) {
    if (seenOptimizer_) {
      diags_.error(s.loc, "only one optimizer is allowed");
      return;
    }
    seenOptimizer_ = true;
    const ast::Call &c = s.config;
    OptimizerSpec &o = model_.optimizer;
    auto bind = [&](Signature sig) { return bindArgs(c.loc, c.callee, c.args, sig); };
    if (c.callee == "sgd") {
      auto v = bind({{{"lr", std::nullopt}, {"momentum", 0.0}, {"weight_decay", 0.0},
                      {"nesterov", 0.0}, {"dampening", 0.0}}});
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
      auto v = bind({{{"lr", 0.01}, {"alpha", 0.99}, {"eps", 1e-8}, {"weight_decay", 0.0},
                      {"momentum", 0.0}, {"centered", 0.0}}});
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
      auto v = bind({{{"lr", 1e-3}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8},
                      {"weight_decay", w ? 1e-2 : 0.0}, {"amsgrad", 0.0}}});
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

  void statement(const ast::TrainDecl &s) {
    if (seenTrain_) {
      diags_.error(s.loc, "only one train statement is allowed");
      return;
    }
    seenTrain_ = true;
    auto v = bindArgs(s.loc, "train", s.settings,
                      Signature{{{"steps", 1000.0},
                                 {"report_every", 100.0},
                                 {"seed", 0.0},
                                 {"epochs", 0.0}}});
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

  // print expr: computed by the forward pass, printed by the program.
  void statement(const ast::PrintDecl &s) {
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

  void statement(const ast::ReportDecl &s) {
    if (!reports_.empty()) {
      diags_.error(s.loc, "only one report line is allowed");
      return;
    }
    reports_.push_back(s.text);
  }

  // Checks that need the whole file: the report (it may name parameters
  // declared after it), and the statements every model needs.
  void finish() {
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
  }

  /// A parameter the loss does not depend on never changes in training.
  void warnUnusedParams() {
    const Graph &g = model_.graph;
    std::vector<bool> used(g.size(), false);
    used[static_cast<size_t>(loss_)] = true;
    for (auto id = loss_; id >= 0; --id)
      if (used[static_cast<size_t>(id)])
        for (ValueId in : g.node(id).inputs)
          used[static_cast<size_t>(in)] = true;
    for (const ParamSpec &p : model_.params)
      if (!used[static_cast<size_t>(p.value)]) {
        diags_.warning(g.node(p.value).loc,
                       fmt::format("the loss does not depend on '{}': training will not change it",
                                   p.name));
      }
  }

  // ---- names ---------------------------------------------------------------

  bool declare(const ast::Ident &name) {
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

  void suggest(std::string_view word, const std::vector<std::string> &names) {
    if (const char *ours = netcSpelling(word)) {
      diags_.note(fmt::format("PyTorch's {} is written {} in netc", word, ours));
      return;
    }
    std::string best = closestMatch(word, names);
    if (!best.empty())
      diags_.note(fmt::format("did you mean '{}'?", best));
  }

  std::vector<std::string> valueNames() const {
    std::vector<std::string> names;
    for (const auto &[n, b] : scope_)
      if (b.kind == Binding::Kind::Value)
        names.push_back(n);
    names.push_back("pi");
    return names;
  }

  // ---- shapes and parameters -------------------------------------------------

  std::optional<Shape> declaredShape(const ast::TensorType &t, bool allowBatch) {
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

  ValueId addParam(const std::string &name, const Shape &shape, InitSpec init,
                   ast::Loc loc) {
    Attrs a;
    a.name = name;
    a.shape = shape;
    a.k = static_cast<int64_t>(model_.params.size());
    ValueId v = model_.graph.add(Op::Param, {}, a, loc);
    model_.params.push_back({name, shape, init, v});
    return v;
  }

  std::optional<InitSpec> initializer(const ast::Expr &e) {
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

  // ---- arguments -------------------------------------------------------------

  ast::Loc argLoc(const ast::Call &c, std::string_view key, size_t position) {
    for (size_t i = 0; i < c.args.size(); ++i)
      if (c.args[i].key == key || (c.args[i].key.empty() && i == position))
        return c.args[i].loc;
    return c.loc;
  }

  /// Matches positional and keyword arguments to `sig`; every argument must
  /// be a constant. Returns the values in signature order.
  std::optional<std::vector<double>>
  bindArgs(ast::Loc callLoc, std::string_view callee,
           const std::vector<ast::Arg> &args, const Signature &sig) {
    std::vector<std::optional<double>> values(sig.params.size());
    std::vector<std::string> names;
    for (const auto &p : sig.params)
      names.push_back(p.name);
    bool ok = true;
    bool sawKeyword = false;
    for (size_t i = 0; i < args.size(); ++i) {
      const ast::Arg &a = args[i];
      size_t slot = i;
      if (!a.key.empty()) {
        sawKeyword = true;
        auto it = std::find(names.begin(), names.end(), a.key);
        if (it == names.end()) {
          diags_.error(a.loc, fmt::format("'{}' has no argument '{}'", callee, a.key));
          suggest(a.key, names);
          ok = false;
          continue;
        }
        slot = static_cast<size_t>(it - names.begin());
      } else if (sawKeyword) {
        diags_.error(a.loc, "a positional argument cannot follow a named one");
        ok = false;
        continue;
      } else if (slot >= sig.params.size()) {
        diags_.error(a.loc, fmt::format("'{}' takes {} argument(s), got {}", callee,
                                        sig.params.size(), args.size()));
        return std::nullopt;
      }
      if (values[slot]) {
        diags_.error(a.loc, fmt::format("argument '{}' given twice", names[slot]));
        ok = false;
        continue;
      }
      auto v = constValue(a.value, /*quiet=*/false);
      if (!v) {
        ok = false;
        continue;
      }
      values[slot] = *v;
    }
    std::vector<double> out;
    for (size_t i = 0; i < sig.params.size(); ++i) {
      if (values[i]) {
        out.push_back(*values[i]);
      } else if (sig.params[i].defaultValue) {
        out.push_back(*sig.params[i].defaultValue);
      } else {
        if (ok)
          diags_.error(callLoc, fmt::format("'{}' needs the argument '{}'",
                                            callee, sig.params[i].name));
        ok = false;
      }
    }
    if (!ok)
      return std::nullopt;
    return out;
  }

  // Evaluates constant expressions; see constValue.
  struct Eval {
    Sema &s;
    bool quiet;
    std::optional<double> operator()(const ast::Number &n) const { return n.value; }
    std::optional<double> operator()(const ast::Ident &n) const {
      if (n.name == "pi")
        return kPi;
      if (n.name == "true" || n.name == "false")
        return n.name == "true" ? 1.0 : 0.0;
      return bad(n.loc, fmt::format("'{}' is not a constant", n.name));
    }
    std::optional<double> operator()(const ast::Unary &n) const {
      auto v = s.constValue(n.operand, quiet);
      if (!v)
        return std::nullopt;
      return -*v;
    }
    std::optional<double> operator()(const ast::Paren &n) const {
      return s.constValue(n.inner, quiet);
    }
    std::optional<double> operator()(const ast::Power &n) const {
      auto a = s.constValue(n.base, quiet), b = s.constValue(n.exponent, quiet);
      if (!a || !b)
        return std::nullopt;
      return std::pow(*a, *b);
    }
    std::optional<double> operator()(const ast::Chain &n) const {
      auto acc = s.constValue(n.first, quiet);
      for (const auto &l : n.rest) {
        auto v = s.constValue(l.operand, quiet);
        if (!acc || !v)
          return std::nullopt;
        switch (l.op) {
        case '+': *acc += *v; break;
        case '-': *acc -= *v; break;
        case '*': *acc *= *v; break;
        case '@': return bad(l.loc, "a matrix product is not a constant");
        default: *acc /= *v; break;
        }
      }
      return acc;
    }
    std::optional<double> operator()(const ast::Call &n) const {
      return bad(n.loc, "expected a constant here, not a call");
    }
    std::optional<double> operator()(const ast::StringLit &n) const {
      return bad(n.loc, "expected a number here, not a string");
    }
    std::optional<double> operator()(const ast::List &n) const {
      return bad(n.loc, "expected a number here, not a list");
    }
    std::optional<double> operator()(const ast::Pipe &n) const {
      return bad(n.loc, "expected a constant here");
    }
    template <typename T>
    std::optional<double> operator()(const boost::spirit::x3::forward_ast<T> &n) const {
      return (*this)(n.get());
    }
    std::optional<double> bad(ast::Loc loc, std::string msg) const {
      if (!quiet)
        s.diags_.error(loc, msg);
      return std::nullopt;
    }
  };

  /// The value of a constant expression: numbers, `pi`, + - * / ^ of those.
  std::optional<double> constValue(const ast::Expr &e, bool quiet) {
    auto v = boost::apply_visitor(Eval{*this, quiet}, e);
    if (v && !std::isfinite(*v)) {
      if (!quiet)
        diags_.error(locOf(e), "this constant is not finite");
      return std::nullopt;
    }
    return v;
  }

  // ---- expressions -----------------------------------------------------------

  /// Adds a node after checking its shape rule; reports a failure at `loc`.
  ValueId node(Op op, std::vector<ValueId> in, Attrs attrs, ast::Loc loc) {
    for (ValueId v : in)
      if (v == kNoValue)
        return kNoValue;
    for (size_t k = 0; k < in.size(); ++k) {
      bool labels = (op == Op::Pick || op == Op::Scatter) && k == 1;
      bool integer = model_.graph.node(in[k]).dtype == DType::I64;
      if (integer != labels) {
        diags_.error(loc, integer ? "class labels are integers: use them with "
                                    "cross_entropy(scores, labels) or nll(log_probs, labels)"
                                  : "expected integer class labels here");
        return kNoValue;
      }
    }
    std::vector<const Shape *> shapes;
    for (ValueId v : in)
      shapes.push_back(&model_.graph.shape(v));
    ShapeResult r = inferShape(op, shapes, attrs);
    if (!r.error.empty()) {
      diags_.error(loc, r.error);
      return kNoValue;
    }
    return model_.graph.add(op, std::move(in), std::move(attrs), loc);
  }

  ValueId expr(const ast::Expr &e) {
    return boost::apply_visitor([&](const auto &n) { return lower(n); }, e);
  }

  template <typename T>
  ValueId lower(const boost::spirit::x3::forward_ast<T> &n) {
    return lower(n.get());
  }

  ValueId lower(const ast::Number &n) { return model_.graph.constant(n.value, n.loc); }

  ValueId lower(const ast::Ident &n) {
    if (n.name == "pi")
      return model_.graph.constant(kPi, n.loc);
    auto it = scope_.find(n.name);
    if (it == scope_.end()) {
      diags_.error(n.loc, fmt::format("unknown name '{}'", n.name));
      suggest(n.name, valueNames());
      return kNoValue;
    }
    if (it->second.kind == Binding::Kind::Sequence) {
      diags_.error(n.loc, fmt::format("'{}' is a sequence of layers; apply it "
                                      "with `x -> {}`",
                                      n.name, n.name));
      return kNoValue;
    }
    return it->second.value;
  }

  ValueId lower(const ast::Paren &n) { return expr(n.inner); }

  ValueId lower(const ast::StringLit &n) {
    diags_.error(n.loc, "a string is not a tensor");
    return kNoValue;
  }

  ValueId lower(const ast::List &n) {
    diags_.error(n.loc, "constant tensors are written in the data declaration: "
                        "data inline(x = [1, 2, 3])");
    return kNoValue;
  }

  ValueId lower(const ast::Unary &n) {
    ValueId v = expr(n.operand);
    return node(Op::Neg, {v}, {}, n.loc);
  }

  ValueId lower(const ast::Power &n) {
    ValueId base = expr(n.base);
    auto k = constValue(n.exponent, /*quiet=*/true);
    if (!k) {
      diags_.error(locOf(n.exponent), "the exponent must be a constant, e.g. x^3 or x^0.5");
      return kNoValue;
    }
    Attrs a;
    if (*k != std::floor(*k) || std::abs(*k) > 64) { // x^0.5: exp(c log x), for x > 0
      a.value = *k;
      return node(Op::Pow, {base}, a, n.loc);
    }
    a.k = static_cast<int64_t>(*k);
    return node(Op::PowI, {base}, a, n.loc);
  }

  ValueId lower(const ast::Chain &n) {
    ValueId acc = expr(n.first);
    uint32_t begin = n.loc.begin;
    for (const auto &l : n.rest) {
      ValueId rhs = expr(l.operand);
      ast::Loc loc{begin, locOf(l.operand).end};
      if (l.op == '@') {
        acc = matrixProduct(acc, rhs, loc);
        continue;
      }
      Op op = l.op == '+' ? Op::Add : l.op == '-' ? Op::Sub : l.op == '*' ? Op::Mul : Op::Div;
      acc = node(op, {acc, rhs}, {}, loc);
    }
    return acc;
  }

  /// a @ b, as torch.matmul for 1-d and 2-d operands: a vector is a row
  /// (on the left) or a column (on the right), and its dimension is dropped
  /// from the result.
  ValueId matrixProduct(ValueId a, ValueId b, ast::Loc loc) {
    if (a == kNoValue || b == kNoValue)
      return kNoValue;
    Shape sa = model_.graph.shape(a), sb = model_.graph.shape(b);
    if (sa.rank() == 0 || sb.rank() == 0 || sa.rank() > 2 || sb.rank() > 2) {
      diags_.error(loc, fmt::format("@ multiplies vectors and matrices (1-d or 2-d), not {} and {}",
                                    sa.str(), sb.str()));
      return kNoValue;
    }
    auto reshape = [&](ValueId v, Shape to) {
      Attrs r;
      r.shape = std::move(to);
      return node(Op::Reshape, {v}, r, loc);
    };
    ValueId a2 = sa.rank() == 1 ? reshape(a, Shape{{1, sa.dims[0]}}) : a;
    ValueId b2 = sb.rank() == 1 ? reshape(b, Shape{{sb.dims[0], 1}}) : b;
    if (a2 == kNoValue || b2 == kNoValue)
      return kNoValue;
    int64_t ka = model_.graph.shape(a2).dims[1], kb = model_.graph.shape(b2).dims[0];
    if (ka != kb) {
      auto dim = [](int64_t d) { return d == kBatch ? std::string("N") : std::to_string(d); };
      diags_.error(loc, fmt::format("@ of {} and {}: the inner dimensions {} and {} differ",
                                    sa.str(), sb.str(), dim(ka), dim(kb)));
      return kNoValue;
    }
    ValueId c = node(Op::MatMul, {a2, b2}, {}, loc);
    if (c == kNoValue || (sa.rank() == 2 && sb.rank() == 2))
      return c;
    Shape out;
    if (sa.rank() == 2)
      out.dims.push_back(sa.dims[0]);
    if (sb.rank() == 2)
      out.dims.push_back(sb.dims[1]);
    return reshape(c, out);
  }

  ValueId lower(const ast::Call &c) {
    const Builtin *f = findBuiltin(c.callee, BuiltinKind::Function);
    if (!f)
      return notAFunction(c);
    switch (f->lowering) {
    case Lowering::Elementwise:
    case Lowering::Sum:
    case Lowering::Mean: {
      auto args = positionalValues(c, 1);
      if (!args)
        return kNoValue;
      if (f->lowering == Lowering::Mean)
        return mean((*args)[0], c.loc);
      return node(f->op, {(*args)[0]}, {}, c.loc);
    }
    case Lowering::Row: {
      if (c.args.empty() || !c.args[0].key.empty()) {
        diags_.error(c.loc, fmt::format("{} needs a tensor first", f->usage));
        return kNoValue;
      }
      ValueId x = expr(c.args[0].value);
      std::vector<ast::Arg> rest(c.args.begin() + 1, c.args.end());
      auto v = bindArgs(c.loc, c.callee, rest, Signature{{{"dim", -1.0}}});
      if (!v)
        return kNoValue;
      return rowOp(c.callee, x, (*v)[0], c.loc);
    }
    case Lowering::Stack: {
      std::vector<ValueId> in;
      for (const auto &a : c.args) {
        if (!a.key.empty()) {
          diags_.error(a.loc, "stack takes tensors only");
          return kNoValue;
        }
        in.push_back(expr(a.value));
      }
      if (in.empty()) {
        diags_.error(c.loc, "stack needs at least one tensor");
        return kNoValue;
      }
      return node(Op::Stack, in, {}, c.loc);
    }
    case Lowering::PointwiseLoss:
      return builtinLoss(c);
    case Lowering::ClassLoss:
      return classificationLoss(c);
    case Lowering::Flatten: {
      ValueId x = c.args.empty() ? kNoValue : expr(c.args[0].value);
      std::vector<ast::Arg> rest(c.args.begin() + (c.args.empty() ? 0 : 1), c.args.end());
      if (c.args.empty() || !c.args[0].key.empty()) {
        diags_.error(c.loc, fmt::format("{} needs a tensor first", f->usage));
        return kNoValue;
      }
      auto v = bindArgs(c.loc, "flatten", rest, Signature{{{"start", 0.0}, {"end", -1.0}}});
      if (!v)
        return kNoValue;
      return flatten(x, (*v)[0], (*v)[1], c.loc);
    }
    case Lowering::Linear:
    case Lowering::None:
      break;
    }
    assert(false && "every function row has a lowering");
    return kNoValue;
  }

  /// A call of something that is not a function: a layer, an initializer,
  /// or a misspelling.
  ValueId notAFunction(const ast::Call &c) {
    if (findBuiltin(c.callee, BuiltinKind::Layer)) {
      diags_.error(c.loc, fmt::format("'{}' is a layer; apply it with `x -> {}(...)`",
                                      c.callee, c.callee));
      return kNoValue;
    }
    if (findBuiltin(c.callee, BuiltinKind::Initializer)) {
      diags_.error(c.loc, fmt::format("'{}' initialises a parameter: `param w = {}()`",
                                      c.callee, c.callee));
      return kNoValue;
    }
    diags_.error(c.loc, fmt::format("unknown function '{}'", c.callee));
    suggest(c.callee, builtinNames(BuiltinKind::Function));
    return kNoValue;
  }

  ValueId lower(const ast::Pipe &p) {
    ValueId v = expr(p.input);
    for (const auto &ref : p.layers) {
      auto it = scope_.find(ref.name);
      if (it != scope_.end() && it->second.kind == Binding::Kind::Sequence) {
        if (!ref.args.empty()) {
          diags_.error(ref.loc, "a sequence takes no arguments");
          return kNoValue;
        }
        const Sequence &seq = sequences_[it->second.sequence];
        if (seq.broken)
          return kNoValue;
        for (const Layer &l : seq.layers)
          v = applyLayer(l, v, ref.loc);
        continue;
      }
      auto layer = makeLayer(ref, fmt::format("{}.", unnamedIndex_));
      ++unnamedIndex_;
      if (!layer)
        return kNoValue;
      v = applyLayer(*layer, v, ref.loc);
    }
    return v;
  }

  std::optional<std::vector<ValueId>> positionalValues(const ast::Call &c,
                                                       size_t count) {
    if (c.args.size() != count) {
      diags_.error(c.loc, fmt::format("'{}' takes {} argument(s), got {}",
                                      c.callee, count, c.args.size()));
      return std::nullopt;
    }
    std::vector<ValueId> out;
    for (const auto &a : c.args) {
      if (!a.key.empty()) {
        diags_.error(a.loc, fmt::format("'{}' takes no named arguments", c.callee));
        return std::nullopt;
      }
      out.push_back(expr(a.value));
    }
    for (ValueId v : out)
      if (v == kNoValue)
        return std::nullopt;
    return out;
  }

  /// mean(x) = sum(x) / numel, where numel may be a multiple of N.
  ValueId mean(ValueId x, ast::Loc loc) {
    if (x == kNoValue)
      return kNoValue;
    const Shape s = model_.graph.shape(x);
    Graph &g = model_.graph;
    ValueId count = g.constant(static_cast<double>(s.constNumel()), loc);
    if (s.hasBatch())
      count = g.binary(Op::Mul, count, g.add(Op::BatchSize, {}, {}, loc), loc);
    return g.binary(Op::Div, g.unary(Op::Sum, x, loc), count, loc);
  }

  ValueId builtinLoss(const ast::Call &c) {
    std::vector<ast::Arg> tensors, options;
    for (const auto &a : c.args)
      (a.key.empty() && tensors.size() < 2 ? tensors : options).push_back(a);
    if (tensors.size() != 2) {
      diags_.error(c.loc, fmt::format("{}(prediction, target, reduction = mean) "
                                      "needs two tensors",
                                      c.callee));
      return kNoValue;
    }
    std::string reduction = "mean";
    for (const auto &o : options) {
      const auto *id = boost::get<ast::Ident>(&o.value);
      if (o.key != "reduction" || !id || (id->name != "mean" && id->name != "sum")) {
        diags_.error(o.loc, "expected `reduction = mean` or `reduction = sum`");
        return kNoValue;
      }
      reduction = id->name;
    }
    ValueId p = expr(tensors[0].value), t = expr(tensors[1].value);
    if (p == kNoValue || t == kNoValue)
      return kNoValue;
    if (!(model_.graph.shape(p) == model_.graph.shape(t))) {
      diags_.error(c.loc, fmt::format("{} compares a prediction of shape {} with a "
                                      "target of shape {}; they must match",
                                      c.callee, model_.graph.shape(p).str(),
                                      model_.graph.shape(t).str()));
      return kNoValue;
    }
    recordPrediction(p, t, regressionKind(c.callee, p));
    Graph &g = model_.graph;
    ValueId err = pointwiseLoss(c.callee, p, t, c.loc);
    return reduction == "sum" ? g.unary(Op::Sum, err, c.loc) : mean(err, c.loc);
  }

  /// What the first operand of a loss other than the classification ones
  /// is: one probability or score of class 1 (bce, bce_with_logits on one
  /// value per example), else values to regress.
  PredictionKind regressionKind(const std::string &loss, ValueId p) {
    const Shape &s = model_.graph.shape(p);
    bool one = s.constNumel() == 1;
    if (loss == "bce" && one)
      return PredictionKind::Probability;
    if (loss == "bce_with_logits" && one)
      return PredictionKind::Logit;
    return PredictionKind::Values;
  }

  /// The model's output is the first operand of its loss function (the
  /// first such call in the file), when it has one row per example; the
  /// target it is compared with is a data field, or none.
  void recordPrediction(ValueId value, ValueId target, PredictionKind kind) {
    if (model_.prediction.value != kNoValue)
      return;
    const Shape &s = model_.graph.shape(value);
    if (s.rank() == 0 || s.dims[0] != kBatch)
      return;
    model_.prediction = {value, kind, fieldOf(target)};
  }

  /// The data field a value is, through reshapes; -1 if it is computed.
  int fieldOf(ValueId v) const {
    while (model_.graph.node(v).op == Op::Reshape)
      v = model_.graph.node(v).inputs[0];
    const Node &n = model_.graph.node(v);
    return n.op == Op::Input ? static_cast<int>(n.attrs.k) : -1;
  }

  /// The per-element loss, as PyTorch defines it:
  ///   mse (p - t)^2, l1 |p - t|, bce -(t log p + (1 - t) log(1 - p)) (PyTorch
  ///   also clamps the logs at -100), bce_with_logits on x:
  ///   relu(x) - x t + log(1 + exp(-|x|)), stable for large |x|.
  ValueId pointwiseLoss(const std::string &kind, ValueId p, ValueId t, ast::Loc loc) {
    Graph &g = model_.graph;
    if (kind == "mse" || kind == "l1") {
      ValueId diff = g.binary(Op::Sub, p, t, loc);
      if (kind == "l1")
        return g.unary(Op::Abs, diff, loc);
      Attrs two;
      two.k = 2;
      return g.add(Op::PowI, {diff}, two, loc);
    }
    ValueId one = g.constant(1.0, loc);
    ValueId notT = g.binary(Op::Sub, one, t, loc);
    if (kind == "bce") {
      ValueId logP = g.unary(Op::Log, p, loc);
      ValueId notP = g.binary(Op::Sub, one, p, loc);
      ValueId logNotP = g.unary(Op::Log, notP, loc);
      ValueId hit = g.binary(Op::Mul, t, logP, loc);
      ValueId miss = g.binary(Op::Mul, notT, logNotP, loc);
      return g.unary(Op::Neg, g.binary(Op::Add, hit, miss, loc), loc);
    }
    ValueId positive = g.unary(Op::Relu, p, loc);
    ValueId xt = g.binary(Op::Mul, p, t, loc);
    ValueId negAbs = g.unary(Op::Neg, g.unary(Op::Abs, p, loc), loc);
    ValueId softplus = g.unary(Op::Log, g.binary(Op::Add, one, g.unary(Op::Exp, negAbs, loc), loc), loc);
    ValueId linear = g.binary(Op::Sub, positive, xt, loc);
    return g.binary(Op::Add, linear, softplus, loc);
  }

  /// cross_entropy(scores, labels): PyTorch's CrossEntropyLoss, mean over the
  /// batch, through a fused, numerically stable log_softmax.
  /// nll(log_probs, labels): NLLLoss, mean over the batch.
  /// Both record `scores` as the model's prediction for evaluation.
  ValueId classificationLoss(const ast::Call &c) {
    if (c.args.size() != 2 || !c.args[0].key.empty() || !c.args[1].key.empty()) {
      diags_.error(c.loc, fmt::format("{}(scores, labels) takes two tensors", c.callee));
      return kNoValue;
    }
    ValueId scores = expr(c.args[0].value), labels = expr(c.args[1].value);
    if (scores == kNoValue || labels == kNoValue)
      return kNoValue;
    const Shape s = model_.graph.shape(scores);
    if (s.rank() != 2 || s.dims.back() == kBatch) {
      diags_.error(locOf(c.args[0].value),
                   fmt::format("{} needs scores of shape [N, classes], got {}", c.callee, s.str()));
      return kNoValue;
    }
    auto classes = static_cast<int64_t>(model_.data.classes.size());
    if (classes && s.dims.back() != classes) {
      diags_.error(locOf(c.args[0].value),
                   fmt::format("{} over {} classes, but the data set has {}", c.callee,
                               s.dims.back(), classes));
      return kNoValue;
    }
    Op producer = model_.graph.node(scores).op;
    PredictionKind kind = PredictionKind::Logits;
    ValueId logp = scores;
    if (c.callee == "cross_entropy") {
      if (producer == Op::Softmax) {
        kind = PredictionKind::Probabilities;
        diags_.warning(model_.graph.node(scores).loc,
                       "cross_entropy applies log_softmax itself, so this softmax is "
                       "applied twice");
        diags_.note("the double softmax flattens the scores and costs accuracy "
                    "(1-7 points on MNIST in PyTorch); pass the logits, i.e. remove "
                    "this softmax, and apply softmax only when you want probabilities");
      }
      logp = node(Op::LogSoftmax, {scores}, {}, c.loc);
    } else {
      kind = PredictionKind::LogProbabilities;
      if (producer != Op::LogSoftmax)
        diags_.warning(c.loc, "nll expects log-probabilities, e.g. nll(x -> log_softmax, labels)");
    }
    ValueId picked = node(Op::Pick, {logp, labels}, {}, c.loc);
    if (picked == kNoValue)
      return kNoValue;
    recordPrediction(scores, labels, kind);
    return model_.graph.unary(Op::Neg, mean(picked, c.loc), c.loc);
  }

  // ---- layers ----------------------------------------------------------------

  std::optional<Layer> makeLayer(const ast::LayerRef &ref, const std::string &prefix) {
    const Builtin *row = findBuiltin(ref.name, BuiltinKind::Layer);
    if (!row) {
      diags_.error(ref.loc, fmt::format("unknown layer '{}'", ref.name));
      std::vector<std::string> names = builtinNames(BuiltinKind::Layer);
      for (const auto &[n, b] : scope_)
        if (b.kind == Binding::Kind::Sequence)
          names.push_back(n);
      suggest(ref.name, names);
      return std::nullopt;
    }
    Layer layer{row, ref.name, {}, {}, ref.loc};
    if (row->lowering == Lowering::Linear) {
      auto v = bindArgs(ref.loc, "linear", ref.args,
                        Signature{{{"in", std::nullopt}, {"out", std::nullopt}, {"bias", 1.0}}});
      if (!v)
        return std::nullopt;
      double in = (*v)[0], out = (*v)[1];
      for (double d : {in, out})
        if (d < 1 || d > (1 << 24) || d != std::floor(d)) {
          diags_.error(ref.loc, "linear(in, out) needs whole numbers from 1 to 2^24");
          return std::nullopt;
        }
      layer.args = *v;
      // PyTorch's default: kaiming_uniform(a = sqrt(5)) on the weight and the
      // same bound, 1/sqrt(fan_in), for the bias.
      double bound = 1.0 / std::sqrt(in);
      InitSpec init{InitSpec::Kind::Uniform, -bound, bound};
      auto i = static_cast<int64_t>(in), o = static_cast<int64_t>(out);
      layer.params.push_back(addParam(prefix + "weight", Shape{{o, i}}, init, ref.loc));
      if ((*v)[2] != 0)
        layer.params.push_back(addParam(prefix + "bias", Shape{{o}}, init, ref.loc));
      return layer;
    }
    if (row->lowering == Lowering::Flatten) {
      auto v = bindArgs(ref.loc, "flatten", ref.args,
                        Signature{{{"start", 1.0}, {"end", -1.0}}});
      if (!v)
        return std::nullopt;
      layer.args = *v;
      return layer;
    }
    if (row->lowering == Lowering::Row) {
      auto v = bindArgs(ref.loc, ref.name, ref.args, Signature{{{"dim", -1.0}}});
      if (!v)
        return std::nullopt;
      layer.args = *v;
      return layer;
    }
    assert(row->lowering == Lowering::Elementwise && "a layer row sema knows");
    if (!bindArgs(ref.loc, ref.name, ref.args, Signature{}))
      return std::nullopt;
    return layer;
  }

  /// An error about layer `l`'s input: at the layer, with a note where it
  /// is applied when that is elsewhere (a sequence used further down).
  void layerError(const Layer &l, ast::Loc applied, const std::string &message) {
    diags_.error(l.loc, message);
    if (applied.begin != l.loc.begin)
      diags_.note(applied, "where the layer is applied");
  }

  /// The layer's nodes carry the layer's own location (in a sequence: where
  /// the sequence declares it); `loc` is where it is applied, for errors
  /// about its input.
  ValueId applyLayer(const Layer &l, ValueId x, ast::Loc loc) {
    if (x == kNoValue)
      return kNoValue;
    Graph &g = model_.graph;
    if (l.row->lowering == Lowering::Linear) {
      const Shape s = g.shape(x);
      auto in = static_cast<int64_t>(l.args[0]);
      if (s.rank() == 0 || s.dims.back() != in) {
        layerError(l, loc, fmt::format("linear({}, {}) expects inputs whose last "
                                      "dimension is {}, got {}",
                                      l.args[0], l.args[1], in, s.str()));
        return kNoValue;
      }
      if (s.rank() > 2) {
        layerError(l, loc, fmt::format("linear takes 1-d or 2-d inputs, got {}; "
                                      "flatten first",
                                      s.str()));
        return kNoValue;
      }
      ValueId y;
      Attrs nt;
      nt.transB = true;
      if (s.rank() == 1) {
        // x [in] -> [1, in] · W^T -> [1, out] -> [out]
        Attrs row;
        row.shape = Shape{{1, in}};
        ValueId x2 = node(Op::Reshape, {x}, row, l.loc);
        ValueId y2 = node(Op::MatMul, {x2, l.params[0]}, nt, l.loc);
        Attrs flat;
        flat.shape = Shape{{static_cast<int64_t>(l.args[1])}};
        y = node(Op::Reshape, {y2}, flat, l.loc);
      } else {
        y = node(Op::MatMul, {x, l.params[0]}, nt, l.loc);
      }
      if (l.params.size() > 1)
        y = node(Op::Add, {y, l.params[1]}, {}, l.loc);
      return y;
    }
    if (l.row->lowering == Lowering::Flatten)
      return flatten(x, l.args[0], l.args[1], loc);
    if (l.row->lowering == Lowering::Row)
      return rowOp(l.kind, x, l.args[0], l.loc);
    return node(l.row->op, {x}, {}, l.loc);
  }

  /// softmax / log_softmax of x along `dim`, which must be its last axis.
  ValueId rowOp(const std::string &name, ValueId x, double dim, ast::Loc loc) {
    if (x == kNoValue)
      return kNoValue;
    auto rank = static_cast<double>(model_.graph.shape(x).rank());
    if (dim != std::floor(dim) || !(dim == -1 || dim == rank - 1)) {
      diags_.error(loc, fmt::format("{} works along the last axis only (dim = -1 or {}), "
                                    "not dim = {}",
                                    name, rank - 1, dim));
      return kNoValue;
    }
    return node(name == "softmax" ? Op::Softmax : Op::LogSoftmax, {x}, {}, loc);
  }

  /// torch.flatten semantics: merges dims start..end (negative counts from
  /// the end; a 0-d tensor becomes [1]).
  ValueId flatten(ValueId x, double startArg, double endArg, ast::Loc loc) {
    if (x == kNoValue)
      return kNoValue;
    Shape s = model_.graph.shape(x);
    if (s.rank() == 0)
      s.dims.push_back(1);
    auto rank = static_cast<int64_t>(s.rank());
    auto norm = [&](double d) { return static_cast<int64_t>(d < 0 ? d + rank : d); };
    int64_t start = norm(startArg), end = norm(endArg);
    if (startArg != std::floor(startArg) || endArg != std::floor(endArg) ||
        start < 0 || start >= rank || end < 0 || end >= rank || start > end) {
      diags_.error(loc, fmt::format("flatten({}, {}) is out of range for a tensor "
                                    "of shape {}",
                                    startArg, endArg, model_.graph.shape(x).str()));
      return kNoValue;
    }
    Shape out;
    int64_t merged = 1;
    bool batch = false;
    for (int64_t i = 0; i < rank; ++i) {
      int64_t d = s.dims[static_cast<size_t>(i)];
      if (i < start || i > end) {
        out.dims.push_back(d);
        continue;
      }
      if (d == kBatch)
        batch = true;
      else
        merged *= d;
      if (i == end) {
        if (batch && merged != 1) {
          diags_.error(loc, fmt::format("flatten({}, {}) would merge the batch "
                                        "dimension of {} with others",
                                        startArg, endArg, s.str()));
          return kNoValue;
        }
        out.dims.push_back(batch ? kBatch : merged);
      }
    }
    Attrs a;
    a.shape = out;
    return node(Op::Reshape, {x}, a, loc);
  }

  // ---- report ----------------------------------------------------------------

  void reportLine(const ast::StringLit &s) {
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

  /// `{a}` or `{0.weight[0, 2]}`: one element of a parameter.
  std::optional<ReportPiece> placeholder(std::string inside, ast::Loc loc) {
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
        diags_.error(loc, fmt::format("'{}' has shape {}; give {} index(es) to "
                                      "pick one number",
                                      name, spec.shape.str(), spec.shape.rank()));
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

  DiagnosticEngine &diags_;
  Model model_;
  std::map<std::string, Binding> scope_;
  /// Fields the data source offers.
  std::map<std::string, std::pair<Shape, DType>> available_;
  std::vector<Sequence> sequences_;
  std::vector<ast::StringLit> reports_;
  bool openFields_ = false; ///< the data source takes any declared field
  const SourceSpec *source_ = nullptr; ///< the data statement's row
  std::string sourceDir_;              ///< the .nn file's folder, for relative paths
  std::map<std::string, bool> inlineWhole_; ///< inline tensors of whole numbers
  std::set<std::string> brokenFields_; ///< inline tensors already reported
  std::string batchName_;
  size_t unnamedIndex_ = 0;
  ValueId loss_ = kNoValue;
  ast::Loc lossLoc_;
  bool seenData_ = false;
  bool seenOptimizer_ = false;
  bool seenTrain_ = false;
};

} // namespace

std::optional<Model> checkProgram(const ast::Program &program, std::string modelName,
                                  DiagnosticEngine &diags, std::string sourceDir) {
  return Sema(std::move(modelName), std::move(sourceDir), diags).run(program);
}

} // namespace netc
