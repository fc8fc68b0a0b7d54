// SemaData.cpp - the data statement (checked against the table of sources,
// DataSources.h) and the input/target fields it offers.
#include "compiler/sema/SemaImpl.h"

#include <fmt/format.h>

#include <filesystem>
#include <regex>

#include <algorithm>
#include <cassert>
#include <cmath>

namespace netc::sema {

void Sema::statement(const ast::DataDecl &s) {
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
  openFields_ =
      spec->fields == SourceSpec::Fields::Declared || spec->fields == SourceSpec::Fields::Pair;
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

bool Sema::sourceOptions(const ast::Call &c, const SourceSpec &spec,
                         const std::vector<ast::Arg> &args) {
  std::vector<std::string> names;
  for (const SourceOption &o : spec.options)
    names.push_back(o.name);
  bool ok = true;
  auto slots = matchArgs(args, names, spec.name, "option",
                         fmt::format("'{}' takes at most {} options; e.g. `{}`", spec.name,
                                     names.size(), spec.example),
                         ok);
  if (!slots)
    return false;
  std::vector<bool> given(spec.options.size());
  for (size_t i = 0; i < args.size(); ++i) {
    size_t slot = (*slots)[i];
    if (slot == names.size())
      continue; // reported
    given[slot] = true;
    ok = sourceOption(spec.options[slot], args[i]) && ok;
  }
  for (size_t i = 0; i < spec.options.size(); ++i) {
    const SourceOption &o = spec.options[i];
    if (given[i])
      continue;
    if (o.required) {
      if (ok)
        diags_.error(c.loc, fmt::format("'{}' needs the option '{}' ({}), e.g. `{}`", spec.name,
                                        o.name, o.help, spec.example));
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

bool Sema::sourceOption(const SourceOption &o, const ast::Arg &a) {
  using K = SourceOption::Kind;
  const auto *text = boost::get<ast::StringLit>(&a.value);
  if (o.kind == K::Classes && text) {
    auto names = splitList(text->text);
    if (o.number > 0 && names.size() != static_cast<size_t>(o.number)) {
      diags_.error(a.loc, fmt::format("'{}' data has {} classes; this names {}", model_.data.source,
                                      o.number, names.size()));
      return false;
    }
    model_.data.classes = names;
    return true;
  }
  if (o.kind == K::Text || o.kind == K::Path) {
    if (!text) {
      diags_.error(a.loc,
                   fmt::format("'{}' is a string: {} = \"...\" ({})", o.name, o.name, o.help));
      return false;
    }
    if (model_.data.source == "audio" && (o.name == "label" || o.name == "test_files") &&
        !(o.name == "label" && text->text == "folder")) {
      try {
        std::regex check(text->text, std::regex::ECMAScript);
      } catch (const std::regex_error &e) {
        diags_.error(a.loc, fmt::format("{} = \"{}\" is not a regular expression: {}", o.name,
                                        text->text, e.what()));
        return false;
      }
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
  if (o.name == "sample_rate" && !whole(1, 1e7))
    return false;
  if (o.name == "channel" && !whole(-1, 65535))
    return false;
  if (o.name == "test" && !(*v >= 0 && *v < 1)) {
    diags_.error(a.loc, "test is the fraction held out for testing, from 0 up to (not "
                        "including) 1");
    return false;
  }
  model_.data.numbers[o.name] = *v;
  return true;
}

std::string Sema::resolved(const SourceOption &o, const std::string &path) const {
  if (o.kind != SourceOption::Kind::Path || path.empty() || path[0] == '/' || sourceDir_.empty())
    return path;
  // Without "." and "dir/.." components, as a user reads a path.
  return std::filesystem::path(sourceDir_ + "/" + path).lexically_normal().string();
}

std::vector<ast::Arg> Sema::inlineData(const ast::Call &c, const SourceSpec &spec) {
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
    inlineWhole_[a.key] =
        std::all_of(t.values.begin(), t.values.end(), [](double v) { return v == std::floor(v); });
    model_.data.inlineTensors.push_back(std::move(t));
  }
  return options;
}

bool Sema::constTensor(const ast::Expr &e, Shape &shape, std::vector<double> &values,
                       size_t depth) {
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

void Sema::statement(const ast::FieldDecl &s) {
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
    diags_.error(s.name.loc, fmt::format("data source '{}' has no field '{}'", model_.data.source,
                                         s.name.name));
    suggest(s.name.name, names);
    return;
  }
  const auto &[fieldShape, fieldType] = it->second;
  if (s.type.dtype != dtypeName(fieldType)) {
    diags_.error(s.type.loc, fmt::format("field '{}' of '{}' is {}, not '{}'", s.name.name,
                                         model_.data.source, dtypeName(fieldType), s.type.dtype));
    return;
  }
  if (!(*shape == fieldShape)) {
    diags_.error(s.type.loc,
                 fmt::format("field '{}' of '{}' has shape {}, declared {}", s.name.name,
                             model_.data.source, fieldShape.str(), shape->str()));
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

} // namespace netc::sema
