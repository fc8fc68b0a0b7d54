// SemaImpl.h - the Sema class, shared by the files that implement it.
//
// Sema is one walk over the program (Sema.cpp says how); its member
// functions live in files along the language's seams: Sema.cpp (the walk,
// names, shapes, parameters, arguments, constants), SemaStatements.cpp (the
// statements but data, the checks at the end), SemaData.cpp (the data
// statement and the input/target fields), SemaExpressions.cpp (expressions,
// built-in functions, losses), SemaLayers.cpp (layers and sequences). Only
// those files include this header.
#pragma once

#include "compiler/graph/AudioTables.h"
#include "compiler/sema/Builtins.h"
#include "compiler/sema/DataSources.h"
#include "compiler/sema/Sema.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace netc::sema {

inline constexpr double kPi = 3.14159265358979323846;

/// "1 argument", "2 arguments": a count and its noun, plural unless 1.
inline std::string counted(size_t n, const std::string &noun, const std::string &plural = "") {
  return std::to_string(n) + " " + (n == 1 ? noun : plural.empty() ? noun + "s" : plural);
}

/// "a, b ,c" -> {"a", "b", "c"}: comma-separated items, spaces trimmed.
std::vector<std::string> splitList(const std::string &text);

/// netc's name for a PyTorch spelling (nn.ReLU, CrossEntropyLoss, ...), or null.
const char *netcSpelling(std::string_view word);

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
  std::vector<ValueId> params;  ///< weight, bias for linear, conv2d, batch norm
  std::vector<ValueId> buffers; ///< batch norm: running mean, var, batches tracked
  std::vector<int64_t> window;  ///< conv2d, pooling: the window op's attrs.window
  ast::Loc loc;
  SpectrogramSpec spectrogram;  ///< spectrogram, mel_spectrogram
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

  void statement(const ast::DataDecl &s);

  /// Binds the options of a data statement to the source's row: keyword or
  /// positional, each of its kind; fills in the defaults; resolves paths
  /// against the .nn file's folder. False after an error.
  bool sourceOptions(const ast::Call &c, const SourceSpec &spec, const std::vector<ast::Arg> &args);

  /// One option's value, checked for its kind and range.
  bool sourceOption(const SourceOption &o, const ast::Arg &a);

  /// A path option relative to the .nn file's folder, made absolute.
  std::string resolved(const SourceOption &o, const std::string &path) const;

  // inline(x = 1.5, y = [0, 1], batch = 2): tensors given in the file; the
  // first dimension of every list is the batch, the same in all of them.
  // Returns the arguments that are options of the source (batch, test, ...),
  // not tensors.
  std::vector<ast::Arg> inlineData(const ast::Call &c, const SourceSpec &spec);

  /// A number or a (nested, rectangular) list of numbers: its shape and its
  /// values, row-major.
  bool constTensor(const ast::Expr &e, Shape &shape, std::vector<double> &values, size_t depth);

  void statement(const ast::FieldDecl &s);

  void statement(const ast::ParamDecl &s);

  void statement(const ast::SequenceDecl &s);

  void statement(const ast::LetDecl &s);

  void statement(const ast::LossDecl &s);

  void statement(const ast::OptimizerDecl &s);

  void statement(const ast::TrainDecl &s);

  // print expr: computed by the forward pass, printed by the program.
  void statement(const ast::PrintDecl &s);

  void statement(const ast::ReportDecl &s);

  // Checks that need the whole file: the report (it may name parameters
  // declared after it), and the statements every model needs.
  void finish();

  /// A parameter the loss does not depend on never changes in training.
  void warnUnusedParams();

  // ---- names ---------------------------------------------------------------

  bool declare(const ast::Ident &name);

  void suggest(std::string_view word, const std::vector<std::string> &names);

  std::vector<std::string> valueNames() const;

  // ---- shapes and parameters -------------------------------------------------

  std::optional<Shape> declaredShape(const ast::TensorType &t, bool allowBatch);

  ValueId addParam(const std::string &name, const Shape &shape, InitSpec init, ast::Loc loc);
  ValueId addBuffer(const std::string &name, const Shape &shape, double init, bool integer,
                    ast::Loc loc);

  std::optional<InitSpec> initializer(const ast::Expr &e);

  // ---- arguments -------------------------------------------------------------

  ast::Loc argLoc(const ast::Call &c, std::string_view key, size_t position);

  /// Which of `names` each argument of a call gives, by keyword or
  /// position (slot names.size(): reported as unknown, misplaced or
  /// repeated, and `ok` cleared). `noun` names them in messages ("argument",
  /// "option"); nullopt, after `tooMany`, when there are too many.
  std::optional<std::vector<size_t>> matchArgs(const std::vector<ast::Arg> &args,
                                               const std::vector<std::string> &names,
                                               std::string_view callee, const char *noun,
                                               const std::string &tooMany, bool &ok);

  /// Matches positional and keyword arguments to `sig`; every argument must
  /// be a constant. Returns the values in signature order.
  std::optional<std::vector<double>> bindArgs(ast::Loc callLoc, std::string_view callee,
                                              const std::vector<ast::Arg> &args,
                                              const Signature &sig);

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
        case '+':
          *acc += *v;
          break;
        case '-':
          *acc -= *v;
          break;
        case '*':
          *acc *= *v;
          break;
        case '@':
          return bad(l.loc, "a matrix product is not a constant");
        default:
          *acc /= *v;
          break;
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
  std::optional<double> constValue(const ast::Expr &e, bool quiet);

  // ---- expressions -----------------------------------------------------------

  /// Adds a node after checking its shape rule; reports a failure at `loc`.
  ValueId node(Op op, std::vector<ValueId> in, Attrs attrs, ast::Loc loc);

  ValueId expr(const ast::Expr &e);

  template <typename T> ValueId lower(const boost::spirit::x3::forward_ast<T> &n) {
    return lower(n.get());
  }

  ValueId lower(const ast::Number &n);

  ValueId lower(const ast::Ident &n);

  ValueId lower(const ast::Paren &n);

  ValueId lower(const ast::StringLit &n);

  ValueId lower(const ast::List &n);

  ValueId lower(const ast::Unary &n);

  ValueId lower(const ast::Power &n);

  ValueId lower(const ast::Chain &n);

  /// a @ b, as torch.matmul for 1-d and 2-d operands: a vector is a row
  /// (on the left) or a column (on the right), and its dimension is dropped
  /// from the result.
  ValueId matrixProduct(ValueId a, ValueId b, ast::Loc loc);

  ValueId lower(const ast::Call &c);

  /// A call of something that is not a function: a layer, an initializer,
  /// or a misspelling.
  ValueId notAFunction(const ast::Call &c);

  ValueId lower(const ast::Pipe &p);

  std::optional<std::vector<ValueId>> positionalValues(const ast::Call &c, size_t count);

  /// mean(x) = sum(x) / numel, where numel may be a multiple of N.
  ValueId mean(ValueId x, ast::Loc loc);

  ValueId builtinLoss(const ast::Call &c);

  /// What the first operand of a loss other than the classification ones
  /// is: one probability or score of class 1 (bce, bce_with_logits on one
  /// value per example), else values to regress.
  PredictionKind regressionKind(const std::string &loss, ValueId p);

  /// The model's output is the first operand of its loss function (the
  /// first such call in the file), when it has one row per example; the
  /// target it is compared with is a data field, or none.
  void recordPrediction(ValueId value, ValueId target, PredictionKind kind);

  /// The data field a value is, through reshapes; -1 if it is computed.
  int fieldOf(ValueId v) const;

  /// The per-element loss, as PyTorch defines it:
  ///   mse (p - t)^2, l1 |p - t|, bce -(t log p + (1 - t) log(1 - p)) (PyTorch
  ///   also clamps the logs at -100), bce_with_logits on x:
  ///   relu(x) - x t + log(1 + exp(-|x|)), stable for large |x|.
  ValueId pointwiseLoss(const std::string &kind, ValueId p, ValueId t, ast::Loc loc);

  /// cross_entropy(scores, labels): PyTorch's CrossEntropyLoss, mean over the
  /// batch, through a fused, numerically stable log_softmax.
  /// nll(log_probs, labels): NLLLoss, mean over the batch.
  /// Both record `scores` as the model's prediction for evaluation.
  ValueId classificationLoss(const ast::Call &c);

  // ---- layers ----------------------------------------------------------------

  std::optional<Layer> makeLayer(const ast::LayerRef &ref, const std::string &prefix);

  /// An error about layer `l`'s input: at the layer, with a note where it
  /// is applied when that is elsewhere (a sequence used further down).
  void layerError(const Layer &l, ast::Loc applied, const std::string &message);

  /// conv2d, max_pool2d, avg_pool2d: kernel, stride and padding as numbers
  /// or lists; conv2d's parameters, named and initialised as PyTorch's.
  std::optional<Layer> windowLayer(const ast::LayerRef &ref, const Builtin &row,
                                   const std::string &prefix, Layer layer);
  /// A number or a list of at most `most` whole numbers >= `least`.
  std::optional<std::vector<int64_t>> sizes(const ast::Arg &a, const char *what, size_t most,
                                            int64_t least);
  ValueId applyWindow(const Layer &l, ValueId x, ast::Loc loc);
  /// batch_norm1d/2d and dropout: mode ops (Modes.h).
  std::optional<Layer> modeLayer(const ast::LayerRef &ref, const std::string &prefix, Layer layer);
  /// spectrogram, mel_spectrogram: torchaudio's arguments, checked.
  std::optional<Layer> spectrogramLayer(const ast::LayerRef &ref, Layer layer);
  std::optional<Layer> decibelLayer(const ast::LayerRef &ref, Layer layer);
  /// Frames of the signal's last axis, times the DFT tables, the power,
  /// times the mel table: [.., L] -> [.., n_mels (or bins), frames].
  ValueId applySpectrogram(const Layer &l, ValueId x, ast::Loc loc);
  ValueId applyModeLayer(const Layer &l, ValueId x, ast::Loc loc);
  int64_t dropoutStreams_ = 0; ///< dropout layers applied so far

  /// The layer's nodes carry the layer's own location (in a sequence: where
  /// the sequence declares it); `loc` is where it is applied, for errors
  /// about its input.
  ValueId applyLayer(const Layer &l, ValueId x, ast::Loc loc);

  /// softmax / log_softmax of x along `dim`, which must be its last axis.
  ValueId rowOp(const std::string &name, ValueId x, double dim, ast::Loc loc);

  /// torch.flatten semantics: merges dims start..end (negative counts from
  /// the end; a 0-d tensor becomes [1]).
  ValueId flatten(ValueId x, double startArg, double endArg, ast::Loc loc);

  // ---- report ----------------------------------------------------------------

  void reportLine(const ast::StringLit &s);

  /// `{a}` or `{0.weight[0, 2]}`: one element of a parameter.
  std::optional<ReportPiece> placeholder(std::string inside, ast::Loc loc);

  /// `{w}` or `{w[0, 1]}` where w is a parameter.
  bool namesParameter(const std::string &inside) const;

  /// Any other placeholder: a scalar expression at `loc` (with its braces).
  std::optional<ReportPiece> reportExpression(ast::Loc loc);

  DiagnosticEngine &diags_;

  Model model_;

  std::map<std::string, Binding> scope_;

  /// Fields the data source offers.
  std::map<std::string, std::pair<Shape, DType>> available_;

  std::vector<Sequence> sequences_;

  std::vector<ast::StringLit> reports_;

  bool openFields_ = false;
  ///< the data source takes any declared field
  const SourceSpec *source_ = nullptr;
  ///< the data statement's row
  std::string sourceDir_;
  ///< the .nn file's folder, for relative paths
  std::map<std::string, bool> inlineWhole_;
  ///< inline tensors of whole numbers
  std::set<std::string> brokenFields_;
  ///< inline tensors already reported
  std::string batchName_;

  size_t unnamedIndex_ = 0;

  ValueId loss_ = kNoValue;

  ast::Loc lossLoc_;

  bool seenData_ = false;

  bool seenOptimizer_ = false;

  bool seenTrain_ = false;
};

} // namespace netc::sema
